import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../core/validate.ts';
import type { AuthSettings } from './guard.ts';
import type { ApiKeyStore } from './key-store.ts';
import { ROLES } from './roles.ts';

const createBody = z.object({ name: z.string().min(1).max(200), role: z.enum(ROLES) }).strict();

/** Key management for admins, and `whoami` so the UI knows whether to ask for a key. */
export function registerAuthRoutes(app: FastifyInstance, keys: ApiKeyStore, settings: AuthSettings): void {
  app.get('/v1/auth/whoami', async (request) => ({
    enabled: settings.enabled,
    chat: settings.chat,
    key: request.apiKey ? { id: request.apiKey.id, name: request.apiKey.name, role: request.apiKey.role } : null,
  }));

  app.get('/v1/auth/keys', async () => ({ data: await keys.list() }));

  app.post('/v1/auth/keys', async (request, reply) => {
    const body = parseInput(createBody, request.body);
    const created = await keys.create(body);
    return reply.status(201).send({ ...created.record, key: created.key });
  });

  app.delete<{ Params: { id: string } }>('/v1/auth/keys/:id', async (request) => keys.revoke(request.params.id));
}
