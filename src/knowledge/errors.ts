import { BerthaError } from '../core/errors.ts';

/** A document that cannot be turned into text: empty, corrupt, or of a format Bertha does not read. */
export class DocumentLoadError extends BerthaError {
  constructor(key: string, reason: string) {
    super('document_unreadable', `cannot load '${key}': ${reason}`, 422, { key, reason });
  }
}

export class EmbedderError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('embedder_failed', message, 502, details);
  }
}
