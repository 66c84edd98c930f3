import type { Config } from '../config/index.ts';
import { cliLogger } from './logger.ts';

/** A `fetch` that reaches Bertha's HTTP API, and where it goes. */
export interface ServerFetch {
  /** Takes absolute URLs under `base`. */
  fetch: typeof fetch;
  base: string;
  /** Where requests go, for messages. */
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

/** The environment variable the CLI reads an API key from, for a Bertha with `auth.enabled`. */
export const API_KEY_ENV = 'BERTHA_API_KEY';

/** Sends `BERTHA_API_KEY` as a bearer token, as the OpenAI clients send theirs, unless the call sets one. */
function withApiKey(inner: typeof fetch): typeof fetch {
  const key = process.env[API_KEY_ENV]?.trim();
  if (!key) return inner;
  return (input, init) => {
    const headers = new Headers(init?.headers);
    if (!headers.has('authorization')) headers.set('authorization', `Bearer ${key}`);
    return inner(input, { ...init, headers: Object.fromEntries(headers) });
  };
}

/**
 * The running Bertha (`server.host`/`server.port`) when it answers, so its controllers and chat
 * see a change at once; with none up, an in-process Bertha that serves no chat answers the
 * same API over `inject`, on the same database, so commands work on a stopped installation.
 * Either way the API's own access rules apply, with the key in `BERTHA_API_KEY`.
 */
export async function openServerFetch(config: Config): Promise<ServerFetch> {
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`;
  if (config.server.port !== 0 && (await reachable(url))) {
    return { fetch: withApiKey(fetch), base: url, target: url, close: async () => {} };
  }
  const { createBertha } = await import('../app.ts');
  const bertha = await createBertha(config, { logger: cliLogger('warn'), serveChat: false });
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
    fetch: withApiKey(injectFetch),
    base: 'http://bertha.local',
    target: `${config.dataDir} (no server running)`,
    close: () => bertha.close(),
  };
}
