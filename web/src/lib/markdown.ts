import MarkdownIt from 'markdown-it';

/**
 * Markdown for model output and document text. Raw HTML is off (it renders as text), links
 * go through markdown-it's validateLink (no javascript:, vbscript:, file: or data: URLs) and
 * open in a new tab without an opener, and images are off: an image URL in an answer would
 * be fetched without a click, which lets injected document text leak the conversation.
 */
const md = new MarkdownIt({ html: false, linkify: true, breaks: false, typographer: false });
md.disable('image');

const defaultLinkOpen =
  md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  const token = tokens[idx];
  if (token) {
    token.attrSet('target', '_blank');
    token.attrSet('rel', 'noopener noreferrer nofollow');
  }
  return defaultLinkOpen(tokens, idx, options, env, self);
};

export function renderMarkdown(text: string): string {
  return md.render(text);
}
