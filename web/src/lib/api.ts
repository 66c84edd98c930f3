/** The API key the dashboard sends (kept in this browser only). */
const KEY_STORAGE = 'bertha.apiKey';

export function storedApiKey(): string | null {
  return localStorage.getItem(KEY_STORAGE);
}

export function storeApiKey(key: string | null): void {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
  window.dispatchEvent(new Event('bertha:api-key'));
}

export function authHeaders(): Record<string, string> {
  const key = storedApiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** An API answer that was not 2xx, with what the UI needs to explain it. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds, from `Retry-After`, on 429/503. */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, retryAfter?: number) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** The server has no such route: the capability is not part of this build. */
  get notAvailable(): boolean {
    return this.status === 404 && this.message.startsWith('no route for');
  }

  get needsKey(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

/** Reads Bertha's `{error:{code,message}}` and OpenAI's `{error:{message,type,code}}` bodies alike. */
export async function errorFrom(response: Response): Promise<ApiError> {
  const retryHeader = response.headers.get('retry-after');
  const retryAfter = retryHeader && /^\d+$/.test(retryHeader) ? Number(retryHeader) : undefined;
  let code = `http_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: { code?: unknown; type?: unknown; message?: unknown } };
    if (body.error) {
      if (typeof body.error.code === 'string') code = body.error.code;
      else if (typeof body.error.type === 'string') code = body.error.type;
      if (typeof body.error.message === 'string') message = body.error.message;
    }
  } catch {
    // A body that is not JSON (a proxy's error page): the status line says enough.
  }
  return new ApiError(response.status, code, message, retryAfter);
}

export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const response = await fetch(path, {
    ...init,
    headers: { accept: 'application/json', ...authHeaders(), ...(init.headers as Record<string, string>) },
  });
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const response = await apiFetch(path, signal ? { signal } : {});
  return (await response.json()) as T;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await apiFetch(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** One sentence for a person, for any error a panel or the chat shows. */
export function describeFailure(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.notAvailable) return 'Not available in this build.';
    if (error.status === 401) return 'This needs an API key: enter one with the key button at the top.';
    if (error.status === 403) return `Your API key's role does not allow this (${error.message}).`;
    const wait = error.retryAfter !== undefined ? ` Try again in ${error.retryAfter} s.` : ' Try again shortly.';
    if (error.status === 429) return `Bertha is overloaded right now (${error.message}).${wait}`;
    if (error.status === 503) return `The model is unavailable right now (${error.message}).${wait}`;
    if (error.code === 'model_not_found') return `${error.message}. Pick another model version in Settings.`;
    return `${error.message} (HTTP ${error.status})`;
  }
  if (error instanceof TypeError) return 'Cannot reach the Bertha server. Is it running?';
  return error instanceof Error ? error.message : String(error);
}
