import type { RetrievedChunk } from '../knowledge/index.ts';
import type { ChatMessage } from '../llm/index.ts';

export interface PromptSettings {
  systemPrompt: string;
  /** Appended to the system prompt when passages were retrieved; `{context}` marks where they go. */
  contextTemplate: string;
}

/** What the prompt shows of a passage: its text, and where it came from when known. */
export type PromptPassage = Pick<RetrievedChunk, 'text'> & { documentKey?: string | undefined };

function numberedPassages(chunks: PromptPassage[]): string {
  return chunks
    .map((chunk, index) => `[${index + 1}]${chunk.documentKey ? ` (${chunk.documentKey})` : ''}\n${chunk.text.trim()}`)
    .join('\n\n');
}

/** The text retrieval searches with: the latest user turn. */
export function retrievalQuery(messages: ChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role === 'user') return message.content;
  }
  return '';
}

/**
 * The messages the runtime sees: the client's own system message, or the bundle's system
 * prompt, with the retrieved passages placed where `{context}` says (or appended through the
 * context template).
 */
export function buildPromptMessages(
  messages: ChatMessage[],
  chunks: PromptPassage[],
  settings: PromptSettings,
): ChatMessage[] {
  const context = numberedPassages(chunks);
  const withContext = (system: string) => {
    if (system.includes('{context}')) return system.replaceAll('{context}', context);
    if (chunks.length === 0) return system;
    const block = settings.contextTemplate.replaceAll('{context}', context);
    return system ? `${system}\n\n${block}` : block;
  };
  const first = messages[0];
  if (first?.role === 'system') return [{ role: 'system', content: withContext(first.content) }, ...messages.slice(1)];
  const system = withContext(settings.systemPrompt);
  return system ? [{ role: 'system', content: system }, ...messages] : messages;
}
