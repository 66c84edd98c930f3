import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { describeError, errorBody } from '../core/error-body.ts';
import { UnavailableError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

export interface HttpServerOptions {
  logger: Logger;
  bodyLimitBytes: number;
}

/**
 * Fastify logs two info lines per request; they drowned everything else (2,247 of 2,752 lines
 * in a first half hour of use). One debug line per request instead; rejected and failed
 * requests still get their info / error line from the error handlers.
 */
class OneDebugLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: Parameters<LogController['requestCompleted']>[1],
    reply: Parameters<LogController['requestCompleted']>[2],
  ): void {
    request.log.debug(
      { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      error ? `request errored: ${error.message}` : 'request',
    );
  }
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
    logController: new OneDebugLinePerRequest(),
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  app.setErrorHandler((error, request, reply) => {
    const described = describeError(error);
    if (described.status >= 500) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: described.code, reason: described.message }, 'request rejected');
    if (error instanceof UnavailableError) reply.header('retry-after', String(error.retryAfterSeconds));
    return reply.status(described.status).send(errorBody(described.code, described.message, described.details));
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(errorBody('not_found', `no route for ${request.method} ${request.url.split('?')[0]}`)),
  );

  return app;
}
