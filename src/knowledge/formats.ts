import { EmptyDocumentError, UnsupportedDocumentError } from './errors.ts';

export type DocumentFormat = 'pdf' | 'docx' | 'markdown' | 'html' | 'text';

/** What the loaders read, by file extension. A name without an extension is read as plain text. */
const FORMATS: ReadonlyArray<{ format: DocumentFormat; name: string; extensions: readonly string[] }> = [
  { format: 'pdf', name: 'PDF', extensions: ['pdf'] },
  { format: 'docx', name: 'Word', extensions: ['docx'] },
  { format: 'markdown', name: 'Markdown', extensions: ['md', 'markdown', 'mdx'] },
  { format: 'html', name: 'HTML', extensions: ['html', 'htm', 'xhtml'] },
  { format: 'text', name: 'plain text', extensions: ['txt', 'text'] },
];

/** `.pdf`, `.docx`, ...: what an upload's file name may end with. */
export const ACCEPTED_EXTENSIONS: readonly string[] = FORMATS.flatMap((entry) =>
  entry.extensions.map((extension) => `.${extension}`),
);

/** The accepted formats in words, for error messages. */
export const ACCEPTED_FORMATS = FORMATS.map((entry) => {
  const extensions = entry.extensions.map((extension) => `.${extension}`).join(', ');
  return `${entry.name} (${extensions}${entry.format === 'text' ? ' or no extension' : ''})`;
}).join(', ');

/** The extension of the key's last path segment, lower-cased, without the dot; '' when it has none. */
export function extensionOf(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

/** The loader for a document: by its extension, or a PDF by its magic bytes whatever its name. */
export function documentFormat(key: string, bytes?: Uint8Array): DocumentFormat | undefined {
  if (bytes && Buffer.from(bytes.subarray(0, 5)).toString('latin1') === '%PDF-') return 'pdf';
  const extension = extensionOf(key);
  if (extension === '') return 'text';
  return FORMATS.find((entry) => entry.extensions.includes(extension))?.format;
}

/**
 * Why a file cannot be ingested whatever its content, checked before it is stored (uploads,
 * `bertha ingest`): a format no loader reads, or no bytes at all. Corrupt content is found only
 * by loading it, in the pipeline. `details` are added to the error's (what else the request did).
 */
export function ingestRefusal(
  key: string,
  bytes: Uint8Array,
  details: Record<string, unknown> = {},
): UnsupportedDocumentError | EmptyDocumentError | undefined {
  if (!documentFormat(key, bytes)) {
    return new UnsupportedDocumentError(key, `.${extensionOf(key)}`, ACCEPTED_EXTENSIONS, ACCEPTED_FORMATS, details);
  }
  if (bytes.length === 0) return new EmptyDocumentError(key, details);
  return undefined;
}
