import { useMemo } from 'react';
import { renderMarkdown } from '../lib/markdown.ts';

/** Model output as Markdown; renderMarkdown never passes raw HTML through (see lib/markdown.ts). */
export function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  // biome-ignore lint/security/noDangerouslySetInnerHtml: markdown-it runs with html disabled and safe links only.
  return <div className="markdown" dangerouslySetInnerHTML={{ __html: html }} />;
}
