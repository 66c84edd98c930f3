import { BerthaError, UnavailableError } from '../core/errors.ts';

export class ModelNotFoundError extends BerthaError {
  constructor(model: string, served: string) {
    super('model_not_found', `The model '${model}' does not exist; this server serves '${served}'`, 404, {
      model,
    });
  }
}

/** Every slot is busy and the waiting line is full: the client should come back later. */
export class OverloadedError extends UnavailableError {
  constructor(waiting: number, retryAfterSeconds: number) {
    super(
      `server overloaded: ${waiting} requests already waiting; retry after ${retryAfterSeconds} s`,
      retryAfterSeconds,
      429,
    );
  }
}

export class ModelNotReadyError extends UnavailableError {
  constructor(detail: string, retryAfterSeconds = 5) {
    super(`model not ready: ${detail}`, retryAfterSeconds, 503);
  }
}

/** The client went away (or aborted) before its request got a slot. */
export class RequestCancelledError extends BerthaError {
  constructor() {
    super('cancelled', 'request cancelled by the client', 499);
  }
}
