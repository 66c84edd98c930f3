import type { RetrievedChunk } from '../knowledge/index.ts';
import type { ChatMessage, PromptMeter, ToolDefinition } from '../llm/index.ts';
import { ContextLengthExceededError } from './errors.ts';
import { buildPromptMessages, type PromptSettings } from './prompt.ts';

/** What was left out or shortened so that the prompt and the answer fit the model's context. */
export interface PromptTrim {
  /** Retrieved passages not in the prompt, by chunk id, best-ranked first. */
  droppedChunkIds: string[];
  /** Passages shortened to fit: how many characters of each were kept. */
  cutChunks: Array<{ chunkId: string; keptChars: number; totalChars: number }>;
  /** Earlier conversation messages left out, oldest first. */
  droppedMessages: number;
  /** Set when `max_tokens` was lowered to what the context had left. */
  maxTokens: { requested: number; granted: number } | null;
}

export const NOTHING_TRIMMED: PromptTrim = { droppedChunkIds: [], cutChunks: [], droppedMessages: 0, maxTokens: null };

export interface FittedPrompt {
  /** What the runtime reads. */
  messages: ChatMessage[];
  /** The passages in it, in rank order; a cut passage carries its shortened text. */
  chunks: RetrievedChunk[];
  maxTokens: number;
  trim: PromptTrim;
}

export interface FitPromptInput {
  messages: ChatMessage[];
  chunks: RetrievedChunk[];
  settings: PromptSettings;
  meter: PromptMeter;
  maxTokens: number;
  /** The functions shown to the model: their descriptions take room in the prompt too. */
  tools?: readonly ToolDefinition[] | undefined;
}

/** A shortened passage shorter than this tells the model too little to be worth its tokens. */
const MIN_PASSAGE_CHARS = 80;
/** Room kept for the answer before passages and history may take it (unless max_tokens is smaller). */
const MIN_ANSWER_TOKENS = 32;
const CUT_MARK = ' …';

function cutText(text: string, chars: number): string {
  const head = text.slice(0, chars);
  const space = head.search(/\s\S*$/);
  return `${(space > MIN_PASSAGE_CHARS / 2 ? head.slice(0, space) : head).trimEnd()}${CUT_MARK}`;
}

/**
 * Fits system prompt + retrieved passages + history + answer into the model's context, in
 * this order of priority: the system prompt and the latest message always; then passages by
 * rank (the first that does not fit whole is cut at a word boundary, the rest are dropped);
 * then earlier messages, newest first and in whole turns; `max_tokens` is lowered to what is
 * left. The answer keeps at least a quarter of the context (or `max_tokens`, if smaller)
 * before passages and history are placed. Throws ContextLengthExceededError when the system
 * prompt and the latest message leave no room for a single answer token.
 */
export function fitPrompt(input: FitPromptInput): FittedPrompt {
  const { meter, settings, maxTokens } = input;
  const limit = meter.contextSize;
  const lead = input.messages[0]?.role === 'system' ? [input.messages[0]] : [];
  const rest = input.messages.slice(lead.length);
  // Tool results are read with the assistant message whose calls they answer: together they
  // are the latest message.
  let tail = rest.length - 1;
  while (tail > 0 && rest[tail]?.role === 'tool') tail -= 1;
  if (rest[tail]?.role !== 'assistant') tail = rest.length - 1;
  const last = rest.slice(tail);
  const history = rest.slice(0, tail);
  const build = (chunks: RetrievedChunk[], keep: number) =>
    buildPromptMessages([...lead, ...history.slice(history.length - keep), ...last], chunks, settings);
  const count = (messages: ChatMessage[]) => meter.count(messages, input.tools);
  const measure = (chunks: RetrievedChunk[], keep: number) => count(build(chunks, keep));

  const whole = measure(input.chunks, history.length);
  if (whole + maxTokens <= limit) {
    return { messages: build(input.chunks, history.length), chunks: input.chunks, maxTokens, trim: NOTHING_TRIMMED };
  }
  const bare = measure([], 0);
  if (bare + 1 > limit) throw new ContextLengthExceededError(limit, bare);
  const reserve = Math.min(maxTokens, Math.max(MIN_ANSWER_TOKENS, Math.floor(limit / 4)));
  const budget = Math.max(bare, limit - reserve);

  const kept: RetrievedChunk[] = [];
  const droppedChunkIds: string[] = [];
  const cutChunks: PromptTrim['cutChunks'] = [];
  let full = false;
  for (const chunk of input.chunks) {
    if (full) {
      droppedChunkIds.push(chunk.chunkId);
      continue;
    }
    if (measure([...kept, chunk], 0) <= budget) {
      kept.push(chunk);
      continue;
    }
    full = true;
    // The longest prefix that fits: token counts grow with the characters kept.
    let low = 0;
    let high = chunk.text.length;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      if (measure([...kept, { ...chunk, text: cutText(chunk.text, mid) }], 0) <= budget) low = mid;
      else high = mid - 1;
    }
    const text = cutText(chunk.text, low);
    if (low >= MIN_PASSAGE_CHARS && measure([...kept, { ...chunk, text }], 0) <= budget) {
      kept.push({ ...chunk, text });
      cutChunks.push({
        chunkId: chunk.chunkId,
        keptChars: text.length - CUT_MARK.length,
        totalChars: chunk.text.length,
      });
    } else {
      droppedChunkIds.push(chunk.chunkId);
    }
  }

  // Whole turns only: the kept history starts at a user message, as chat templates expect.
  const starts = [0];
  for (let keep = 1; keep <= history.length; keep++) {
    if (history[history.length - keep]?.role === 'user') starts.push(keep);
  }
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (measure(kept, starts[mid] ?? 0) <= budget) low = mid;
    else high = mid - 1;
  }
  const keep = starts[low] ?? 0;
  const messages = build(kept, keep);
  const granted = Math.min(maxTokens, limit - count(messages));
  return {
    messages,
    chunks: kept,
    maxTokens: granted,
    trim: {
      droppedChunkIds,
      cutChunks,
      droppedMessages: history.length - keep,
      maxTokens: granted < maxTokens ? { requested: maxTokens, granted } : null,
    },
  };
}
