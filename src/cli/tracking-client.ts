import type { Config } from '../config/index.ts';
import { createTrackingClient, type TrackingClient } from '../tracking/index.ts';

export interface OpenedTrackingClient {
  client: TrackingClient;
  /** Where the client talks to, for messages. */
  target: string;
  close(): Promise<void>;
}

async function reachable(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
    return true;
  } catch {
    return false;
  }
}

/**
 * The tracking server the CLI talks to: `tracking.uri` (a remote MLflow) when set, else the
 * running Bertha server; with no server up, an in-process Bertha answers the same API over
 * `inject`, so registry commands work on a stopped installation too.
 */
export async function openTrackingClient(config: Config): Promise<OpenedTrackingClient> {
  if (config.tracking.uri) {
    return {
      client: createTrackingClient({ uri: config.tracking.uri, token: config.tracking.token || undefined }),
      target: config.tracking.uri,
      close: async () => {},
    };
  }
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`;
  if (config.server.port !== 0 && (await reachable(url))) {
    return { client: createTrackingClient({ uri: url }), target: url, close: async () => {} };
  }
  const { createBertha } = await import('../app.ts');
  const { createLogger } = await import('../core/logger.ts');
  const bertha = await createBertha(config, { logger: createLogger('warn') });
  const injectFetch: typeof fetch = async (input, init) => {
    const target = new URL(String(input));
    const answer = await bertha.http.inject({
      method: (init?.method ?? 'GET') as 'GET',
      url: `${target.pathname}${target.search}`,
      headers: (init?.headers ?? {}) as Record<string, string>,
      ...(init?.body === undefined || init.body === null ? {} : { payload: init.body as string | Buffer }),
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers))
      if (value !== undefined) headers.set(name, String(value));
    return new Response(answer.statusCode === 204 ? null : answer.rawPayload, { status: answer.statusCode, headers });
  };
  return {
    client: createTrackingClient({ uri: 'http://bertha.local', fetch: injectFetch }),
    target: `${config.dataDir} (no server running)`,
    close: () => bertha.close(),
  };
}
