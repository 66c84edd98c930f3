/**
 * Every error Bertha raises on purpose carries a stable `code` (for clients and logs)
 * and the HTTP `status` it maps to when it reaches a route.
 */
export class BerthaError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, status = 500, details?: Record<string, unknown>, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.details = details;
  }

  static isInstance(value: unknown): value is BerthaError {
    return value instanceof BerthaError;
  }
}

export class ConfigError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('config_invalid', message, 500, details);
  }
}

export class ValidationError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('invalid_request', message, 400, details);
  }
}

export class NotFoundError extends BerthaError {
  constructor(what: string, id: string) {
    super('not_found', `${what} '${id}' does not exist`, 404, { what, id });
  }
}

export class ConflictError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('conflict', message, 409, details);
  }
}

export class UnauthorizedError extends BerthaError {
  constructor(message = 'missing or invalid credentials') {
    super('unauthorized', message, 401);
  }
}

export class UnavailableError extends BerthaError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 1, status = 503) {
    super('unavailable', message, status);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The configured adapter cannot do what was asked (e.g. log-likelihoods from an upstream without them). */
export class UnsupportedError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('unsupported', message, 501, details);
  }
}
