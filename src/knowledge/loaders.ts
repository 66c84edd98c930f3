import { DocumentLoadError } from './errors.ts';
import { ACCEPTED_FORMATS, type DocumentFormat, documentFormat, extensionOf } from './formats.ts';

/** A run of text with where it came from in the document (page, heading). */
export interface DocumentSection {
  text: string;
  metadata: Record<string, string | number>;
}

export interface LoadedText {
  format: DocumentFormat;
  sections: DocumentSection[];
  /** Facts about the whole document (page count, title). */
  metadata: Record<string, string | number>;
}

/** Strict UTF-8: a binary file given a text extension is corrupt, not gibberish to index. */
function decodeUtf8(key: string, bytes: Buffer): string {
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (text.includes('\u0000')) throw new Error('NUL byte');
    return text.replace(/^\uFEFF/, '');
  } catch {
    throw new DocumentLoadError(key, 'not valid UTF-8 text');
  }
}

/** Markdown split at ATX headings; each section records its heading and the heading path above it. */
export function markdownSections(markdown: string): DocumentSection[] {
  const sections: DocumentSection[] = [];
  const path: string[] = [];
  let current: string[] = [];
  let heading = '';
  let inFence = false;
  const flush = () => {
    const text = current.join('\n').trim();
    if (text) sections.push({ text, metadata: heading ? { heading, section: path.join(' > ') } : {} });
    current = [];
  };
  for (const line of markdown.split(/\r?\n/)) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    const match = inFence ? null : /^(#{1,6})\s+(.+?)\s*#*\s*$/.exec(line);
    if (match?.[1] && match[2]) {
      flush();
      const level = match[1].length;
      path.splice(level - 1);
      path[level - 1] = match[2];
      heading = match[2];
      current.push(match[2]);
      continue;
    }
    current.push(line);
  }
  flush();
  return sections;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

function htmlToText(html: string): string {
  return decodeEntities(
    html
      .replace(/<(br|\/p|\/div|\/li|\/tr|\/h[1-6]|\/blockquote|\/pre)\b[^>]*>/gi, '\n')
      .replace(/<[^>]+>/g, ' ')
      .replace(/[ \t\f\v]+/g, ' ')
      .replace(/ *\n */g, '\n')
      .replace(/\n{3,}/g, '\n\n'),
  ).trim();
}

/** HTML split at h1-h6; scripts, styles and comments dropped. */
export function htmlSections(html: string): { sections: DocumentSection[]; title: string | undefined } {
  const title = /<title[^>]*>([\s\S]*?)<\/title>/i.exec(html)?.[1];
  const body = html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(script|style|noscript|template|head)\b[\s\S]*?<\/\1\s*>/gi, ' ');
  const sections: DocumentSection[] = [];
  const path: string[] = [];
  let heading = '';
  let last = 0;
  const headingPattern = /<h([1-6])\b[^>]*>([\s\S]*?)<\/h\1\s*>/gi;
  const push = (fragment: string) => {
    const text = htmlToText(fragment);
    if (text) sections.push({ text, metadata: heading ? { heading, section: path.join(' > ') } : {} });
  };
  for (let match = headingPattern.exec(body); match; match = headingPattern.exec(body)) {
    push(body.slice(last, match.index));
    const level = Number(match[1]);
    heading = htmlToText(match[2] ?? '');
    path.splice(level - 1);
    path[level - 1] = heading;
    // The heading text stays at the start of its section so the passage reads as written.
    last = match.index;
  }
  push(body.slice(last));
  return { sections, title: title ? htmlToText(title) : undefined };
}

async function loadPdf(key: string, bytes: Buffer): Promise<LoadedText> {
  let pages: string[];
  let totalPages: number;
  // PDF and DOCX libraries load on first use: most start-ups never read one.
  const { extractText, getDocumentProxy } = await import('unpdf');
  try {
    // pdf.js prints its warnings ("Indexing all PDF objects" while repairing) with console.log:
    // 0 keeps it to errors, which reach the caller as the exception below.
    const pdf = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 });
    const result = await extractText(pdf, { mergePages: false });
    pages = result.text;
    totalPages = result.totalPages;
  } catch (error) {
    throw new DocumentLoadError(key, `corrupt PDF: ${(error as Error).message}`);
  }
  const sections = pages
    .map((text, index) => ({ text: text.trim(), metadata: { page: index + 1 } }))
    .filter((section) => section.text.length > 0);
  return { format: 'pdf', sections, metadata: { pages: totalPages } };
}

async function loadDocx(key: string, bytes: Buffer): Promise<LoadedText> {
  const { default: mammoth } = await import('mammoth');
  let html: string;
  try {
    html = (await mammoth.convertToHtml({ buffer: bytes })).value;
  } catch (error) {
    throw new DocumentLoadError(key, `corrupt DOCX: ${(error as Error).message}`);
  }
  return { format: 'docx', sections: htmlSections(html).sections, metadata: {} };
}

/**
 * Turns a document's bytes into sections of text with page/section metadata. Throws
 * `DocumentLoadError` for empty, corrupt or unsupported documents.
 */
export async function loadText(key: string, bytes: Buffer): Promise<LoadedText> {
  if (bytes.length === 0) throw new DocumentLoadError(key, 'the file is empty');
  const format = documentFormat(key, bytes);
  let loaded: LoadedText;
  switch (format) {
    case 'pdf':
      loaded = await loadPdf(key, bytes);
      break;
    case 'docx':
      loaded = await loadDocx(key, bytes);
      break;
    case 'markdown':
      loaded = { format, sections: markdownSections(decodeUtf8(key, bytes)), metadata: {} };
      break;
    case 'html': {
      const { sections, title } = htmlSections(decodeUtf8(key, bytes));
      loaded = { format, sections, metadata: title ? { title } : {} };
      break;
    }
    case 'text': {
      const text = decodeUtf8(key, bytes).trim();
      loaded = { format, sections: text ? [{ text, metadata: {} }] : [], metadata: {} };
      break;
    }
    default:
      throw new DocumentLoadError(key, `unsupported format '.${extensionOf(key)}'; accepted: ${ACCEPTED_FORMATS}`);
  }
  if (loaded.sections.length === 0) throw new DocumentLoadError(key, `no text found in the ${format} document`);
  return loaded;
}
