import pg from 'pg';

/**
 * A pg pool that survives PostgreSQL ending its connections (a restart, `pg_terminate_backend`).
 * pg-pool listens for errors on idle clients only: a client that is checked out but between
 * two queries when its connection ends emits 'error' with no listener, and Node ends the
 * process. Every client here keeps a listener for its whole life, so the error fails the
 * client's next query instead, and the pool discards the client when it is released.
 */
export function resilientPool(config: pg.PoolConfig, onIdleError: (error: Error) => void): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on('error', onIdleError);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}
