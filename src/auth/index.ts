export { type AuthSettings, ForbiddenError, registerAuthGuard } from './guard.ts';
export { type ApiKeyRecord, type ApiKeyStore, type CreatedApiKey, createApiKeyStore, hashApiKey } from './key-store.ts';
export { type Access, accessFor } from './policy.ts';
export { isRole, ROLES, type Role, roleAllows } from './roles.ts';
export { registerAuthRoutes } from './routes.ts';
