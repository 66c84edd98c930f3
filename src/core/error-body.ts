import { BerthaError } from './errors.ts';

/** The JSON error body used by every non-OpenAI route. */
export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export function errorBody(code: string, message: string, details?: Record<string, unknown>): ErrorBody {
  return { error: { code, message, ...(details ? { details } : {}) } };
}

/** Maps any thrown value to a status and a BerthaError-shaped description. */
export function describeError(error: unknown): {
  status: number;
  code: string;
  message: string;
  details?: Record<string, unknown>;
} {
  if (BerthaError.isInstance(error)) {
    return {
      status: error.status,
      code: error.code,
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
    };
  }
  // The HTTP server's own errors (a body that does not parse, one over the size limit) carry a statusCode.
  const httpError = error as { statusCode?: unknown; message: string } | null | undefined;
  if (typeof httpError?.statusCode === 'number' && httpError.statusCode < 500) {
    const code = httpError.statusCode === 413 ? 'payload_too_large' : 'invalid_request';
    return { status: httpError.statusCode, code, message: httpError.message };
  }
  if (connectionLost(error)) {
    return { status: 503, code: 'database_unavailable', message: 'the database connection was lost; retry' };
  }
  return { status: 500, code: 'internal_error', message: 'internal error' };
}

/**
 * PostgreSQL ended the connection under a request (a restart, a failover): the request may be
 * retried as it is. SQLSTATE classes 08 (connection exception) and 57 (operator intervention),
 * or pg's own message for a socket that closed.
 */
function connectionLost(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && /^(08|57)[0-9A-Z]{3}$/.test(code)) return true;
  return typeof message === 'string' && /^Connection terminated|not queryable/.test(message);
}
