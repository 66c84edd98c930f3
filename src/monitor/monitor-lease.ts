import { hostname } from 'node:os';
import { newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';

/** The `leases` row of the monitor's singleton work. */
const MONITOR_LEASE = 'monitor';

/**
 * Which process of a deployment exports the feedback series read from the database and runs
 * the quality watcher. Several worker processes may run; were each to export what it read
 * from the shared tables, `sum()` over them would count every vote once per worker.
 */
export interface MonitorLease {
  /** Whether this process holds the lease now (by its own clock: renewed less than `ttlMs` ago). */
  held(): boolean;
  /** Takes the lease when it is free or lapsed, renews it when held here; resolves to `held()`. */
  acquire(): Promise<boolean>;
  /** Acquires now, then renews (or tries to take over) every third of `ttlMs`; the stop function releases it. */
  start(): Promise<() => Promise<void>>;
}

export function createMonitorLease(options: {
  db: MetadataDb;
  /** How long a holder that stopped renewing (a crash) keeps the lease. */
  ttlMs: number;
  logger: Logger;
  /** Names this process in the row, e.g. for `select * from leases`. */
  holder?: string;
}): MonitorLease {
  const { db, ttlMs, logger } = options;
  const holder = options.holder ?? `${hostname()}:${process.pid}:${newId('mon').slice(-6)}`;
  let heldUntil = 0;

  async function acquire(): Promise<boolean> {
    const asked = Date.now();
    const now = new Date(asked).toISOString();
    const until = new Date(asked + ttlMs).toISOString();
    const wasHeld = heldUntil > asked;
    try {
      // One statement on both databases: insert, or take over a row that is ours or lapsed.
      const row = await db.kysely
        .insertInto('leases')
        .values({ name: MONITOR_LEASE, holder, expires_at: until })
        .onConflict((conflict) =>
          conflict
            .column('name')
            .doUpdateSet({ holder, expires_at: until })
            .where((eb) => eb.or([eb('leases.holder', '=', holder), eb('leases.expires_at', '<', now)])),
        )
        .returning('holder')
        .executeTakeFirst();
      // Counted from before the statement was sent, so this process never believes it longer than the row says.
      heldUntil = row ? asked + ttlMs : 0;
    } catch (error) {
      logger.warn({ err: error, holder }, 'could not renew the monitor lease');
    }
    const held = heldUntil > Date.now();
    if (held !== wasHeld) logger.info({ holder, held }, held ? 'monitor lease taken' : 'monitor lease lost');
    return held;
  }

  return {
    held: () => heldUntil > Date.now(),
    acquire,
    async start() {
      await acquire();
      let renewing: Promise<unknown> = Promise.resolve();
      const timer = setInterval(() => {
        renewing = renewing.then(acquire);
      }, ttlMs / 3);
      timer.unref();
      return async () => {
        clearInterval(timer);
        await renewing;
        if (heldUntil === 0) return;
        heldUntil = 0;
        // Handed back at once, so a restart or another worker need not wait for it to lapse.
        await db.kysely
          .deleteFrom('leases')
          .where('name', '=', MONITOR_LEASE)
          .where('holder', '=', holder)
          .execute()
          .catch((error: unknown) => logger.warn({ err: error }, 'could not release the monitor lease'));
      };
    },
  };
}
