import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BerthaError, UnauthorizedError } from '../core/errors.ts';
import type { ApiKeyRecord, ApiKeyStore } from './key-store.ts';
import { accessFor } from './policy.ts';
import { roleAllows } from './roles.ts';

export interface AuthSettings {
  enabled: boolean;
  chat: 'public' | 'keyed';
}

export class ForbiddenError extends BerthaError {
  constructor(message: string) {
    super('forbidden', message, 403);
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key the request presented, when it presented a valid one. */
    apiKey?: ApiKeyRecord | undefined;
  }
}

/** `Authorization: Bearer <key>` (OpenAI clients send it this way) or `x-api-key`. */
export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header?.toLowerCase().startsWith('bearer ')) return header.slice(7).trim();
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' ? apiKey.trim() : undefined;
}

/** Checks every request against the route policy before any route handler runs. */
export function registerAuthGuard(app: FastifyInstance, keys: ApiKeyStore, settings: AuthSettings): void {
  app.addHook('onRequest', async (request) => {
    const key = presentedKey(request);
    if (key) request.apiKey = await keys.verify(key);
    if (!settings.enabled) return;
    const access = accessFor(request.method, request.url);
    if (access === 'open' || (access === 'chat' && settings.chat === 'public')) return;
    if (!request.apiKey) {
      throw new UnauthorizedError(key ? 'the API key is not valid or was revoked' : 'an API key is required');
    }
    const needed = access === 'chat' ? 'viewer' : access;
    if (!roleAllows(request.apiKey.role, needed)) {
      throw new ForbiddenError(`this needs the ${needed} role; the key has ${request.apiKey.role}`);
    }
  });
}
