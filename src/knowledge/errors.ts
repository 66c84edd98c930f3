import { BerthaError } from '../core/errors.ts';

/** A document that cannot be turned into text: empty, corrupt, or of a format Bertha does not read. */
export class DocumentLoadError extends BerthaError {
  constructor(key: string, reason: string) {
    super('document_unreadable', `cannot load '${key}': ${reason}`, 422, { key, reason });
  }
}

/** A load that failed earlier and was recorded on the document: its message is that record. */
export class DocumentNotLoadedError extends BerthaError {
  constructor(key: string, recordedError: string) {
    super('document_unreadable', recordedError, 422, { key });
  }
}

function fileName(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}

/** A file of a format no loader reads, refused before it is stored (HTTP 415 Unsupported Media Type). */
export class UnsupportedDocumentError extends BerthaError {
  /** The short reason, for a list of files (`bertha ingest`). */
  readonly reason: string;
  constructor(
    key: string,
    extension: string,
    accepted: readonly string[],
    acceptedInWords: string,
    details: Record<string, unknown> = {},
  ) {
    const reason = `unsupported format '${extension}'`;
    super(
      'unsupported_document_type',
      `cannot ingest '${fileName(key)}': ${reason}; accepted: ${acceptedInWords}`,
      415,
      { key, extension, accepted: [...accepted], ...details },
    );
    this.reason = reason;
  }
}

/** A file with no bytes, refused before it is stored: there is nothing to ingest. */
export class EmptyDocumentError extends BerthaError {
  readonly reason = 'the file is empty';
  constructor(key: string, details: Record<string, unknown> = {}) {
    super('document_empty', `cannot ingest '${fileName(key)}': the file is empty`, 422, { key, ...details });
  }
}

export class EmbedderError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('embedder_failed', message, 502, details);
  }
}
