import type { Role } from './roles.ts';

/**
 * What a request needs: `open` (health, metrics, the UI's static files, `whoami`), `chat`
 * (the OpenAI-compatible API and thumbs: public or keyed by `auth.chat`), or a role.
 */
export type Access = 'open' | 'chat' | Role;

const CHAT_ROUTES = new Set([
  'POST /v1/chat/completions',
  'POST /v1/completions',
  'GET /v1/models',
  'POST /v1/feedback',
]);

/** MLflow's read endpoints that are POSTs (search bodies): a viewer may call them. */
const MLFLOW_POST_READS = /\/(search|search-.+|get-.+)$/;

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function accessFor(method: string, url: string): Access {
  const path = url.split('?')[0] ?? url;
  if (!path.startsWith('/v1/') && !path.startsWith('/api/')) return 'open';
  if (CHAT_ROUTES.has(`${method} ${path}`) || (method === 'GET' && /^\/v1\/models\/[^/]+$/.test(path))) return 'chat';
  // The comment or correction that follows a thumbs vote (the store checks it is the voter's).
  if (method === 'PATCH' && /^\/v1\/feedback\/[^/]+$/.test(path)) return 'chat';
  if (path === '/v1/auth/whoami') return 'open';
  if (path.startsWith('/v1/auth/')) return 'admin';
  if (READ_METHODS.has(method)) return 'viewer';
  if (path.startsWith('/api/2.0/mlflow/') && MLFLOW_POST_READS.test(path)) return 'viewer';
  return 'operator';
}
