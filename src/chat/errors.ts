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

/** The system prompt and the latest message alone leave no room for an answer (OpenAI's `context_length_exceeded`). */
export class ContextLengthExceededError extends BerthaError {
  constructor(contextSize: number, promptTokens: number) {
    super(
      'context_length_exceeded',
      `This model's maximum context length is ${contextSize} tokens, but the system prompt and the last message alone take ${promptTokens} tokens; shorten the messages.`,
      400,
      { param: 'messages', contextSize, promptTokens },
    );
  }
}

/**
 * A request field this server does not honour (OpenAI's `unsupported_parameter`): refused,
 * not ignored, so that a client never takes an answer for one that followed it.
 */
export class UnsupportedParameterError extends BerthaError {
  constructor(param: string, reason: string) {
    super('unsupported_parameter', `invalid request body: ${param}: ${reason}`, 400, { param });
  }
}
