import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { BerthaError, UnavailableError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

export interface HttpServerOptions {
  logger: Logger;
  bodyLimitBytes: number;
}

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
  const fastifyError = error as FastifyError;
  if (typeof fastifyError?.statusCode === 'number' && fastifyError.statusCode < 500) {
    const code = fastifyError.statusCode === 413 ? 'payload_too_large' : 'invalid_request';
    return { status: fastifyError.statusCode, code, message: fastifyError.message };
  }
  return { status: 500, code: 'internal_error', message: 'internal error' };
}

export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: options.bodyLimitBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Graceful shutdown: close() stops accepting and waits for in-flight requests.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  app.setErrorHandler((error, request, reply) => {
    const described = describeError(error);
    if (described.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: described.code, msg: described.message }, 'request rejected');
    if (error instanceof UnavailableError) reply.header('retry-after', String(error.retryAfterSeconds));
    return reply.status(described.status).send(errorBody(described.code, described.message, described.details));
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(errorBody('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`)),
  );

  return app;
}
