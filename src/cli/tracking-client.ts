import type { Config } from '../config/index.ts';
import { createTrackingClient, type TrackingClient } from '../tracking/index.ts';
import { openServerFetch } from './server-fetch.ts';

export interface OpenedTrackingClient {
  client: TrackingClient;
  /** Where the client talks to, for messages. */
  target: string;
  close(): Promise<void>;
}

/**
 * Where the CLI reads runs: `tracking.uri` (a remote MLflow) when set, else the
 * running Bertha server; with no server up, an in-process Bertha answers the same API over
 * `inject`, so the commands work on a stopped installation too.
 */
export async function openTrackingClient(config: Config): Promise<OpenedTrackingClient> {
  if (config.tracking.uri) {
    return {
      client: createTrackingClient({ uri: config.tracking.uri, token: config.tracking.token || undefined }),
      target: config.tracking.uri,
      close: async () => {},
    };
  }
  return openRegistryClient(config);
}

/**
 * Bertha's own registry, whose aliases decide what is served: the running server, else an
 * in-process one. `tracking.uri` moves runs to a remote MLflow, never the serving registry.
 */
export async function openRegistryClient(config: Config): Promise<OpenedTrackingClient> {
  const server = await openServerFetch(config);
  return {
    client: createTrackingClient({ uri: server.base, fetch: server.fetch }),
    target: server.target,
    close: () => server.close(),
  };
}
