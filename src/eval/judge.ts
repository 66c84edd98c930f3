import { createHash } from 'node:crypto';
import { z } from 'zod';
import { BerthaError } from '../core/errors.ts';

/**
 * Bumped whenever JUDGE_INSTRUCTIONS or the message layout changes: cached verdicts are keyed
 * by it, so a changed prompt is never answered from verdicts given to the old one.
 */
export const JUDGE_PROMPT_VERSION = 'faithfulness-v1';

/**
 * RAGAS's faithfulness (Es et al., 2023) in one call: the judge breaks the answer into
 * statements and decides for each whether the passages alone support it.
 */
export const JUDGE_INSTRUCTIONS = `You check whether an answer is faithful to the passages it was given.
Break the answer into short, self-contained factual statements (replace pronouns with what they refer to).
For each statement decide whether it can be directly inferred from the passages alone; general knowledge
that the passages do not state does not count. Leave out greetings, restatements of the question and
refusals to answer: they are not statements.
Reply with one JSON object and nothing else, in this shape:
{"statements":[{"statement":"...","supported":true,"reason":"one short sentence"}]}`;

export interface JudgeInput {
  itemId: string;
  question: string;
  answer: string;
  /** The passages the answer was generated from. */
  contexts: readonly string[];
}

export interface JudgedStatement {
  statement: string;
  supported: boolean;
  reason?: string | undefined;
}

export interface JudgeVerdict {
  statements: JudgedStatement[];
  supported: number;
  total: number;
  /** supported / total; 0 when the judge found no statement. */
  score: number;
}

/** A faithfulness judge: any model behind an OpenAI-compatible endpoint. */
export interface FaithfulnessJudge {
  readonly model: string;
  readonly promptVersion: string;
  /** Throws JudgeError when the endpoint fails or answers something that is not a verdict. */
  judge(input: JudgeInput, signal?: AbortSignal): Promise<JudgeVerdict>;
}

/** The judge endpoint failed or its reply was not a verdict; the item is inconclusive, never a pass. */
export class JudgeError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>, options?: ErrorOptions) {
    super('judge_failed', message, 502, details, options);
  }
}

/** SHA-256 of the answer and the passages it was judged against: a cached verdict is reused only for the same pair. */
export function judgementDigest(answer: string, contexts: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify({ answer, contexts })).digest('hex');
}

export function judgeMessages(input: JudgeInput): Array<{ role: 'system' | 'user'; content: string }> {
  const passages = input.contexts.map((text, index) => `[${index + 1}] ${text.trim()}`).join('\n\n');
  return [
    { role: 'system', content: JUDGE_INSTRUCTIONS },
    {
      role: 'user',
      content: `Passages:\n${passages || '(none)'}\n\nQuestion: ${input.question}\n\nAnswer: ${input.answer}`,
    },
  ];
}

const flag = z.union([
  z.boolean(),
  z
    .string()
    .transform((value) => value.trim().toLowerCase())
    .pipe(z.enum(['true', 'false', 'yes', 'no']))
    .transform((value) => value === 'true' || value === 'yes'),
]);

const verdictSchema = z.object({
  statements: z.array(
    z.object({
      statement: z.string(),
      supported: flag,
      reason: z.string().optional(),
    }),
  ),
});

/** Reads the judge's reply: a JSON object, possibly inside a Markdown code fence. */
export function parseJudgeVerdict(content: string): JudgeVerdict {
  const start = content.indexOf('{');
  const end = content.lastIndexOf('}');
  if (start < 0 || end < start)
    throw new JudgeError('the judge reply holds no JSON object', { reply: content.slice(0, 200) });
  let json: unknown;
  try {
    json = JSON.parse(content.slice(start, end + 1));
  } catch (error) {
    throw new JudgeError('the judge reply is not valid JSON', { reply: content.slice(0, 200) }, { cause: error });
  }
  const parsed = verdictSchema.safeParse(json);
  if (!parsed.success) {
    throw new JudgeError(`the judge reply is not a verdict: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      reply: content.slice(0, 200),
    });
  }
  const statements = parsed.data.statements.map((s) => ({
    statement: s.statement,
    supported: s.supported,
    ...(s.reason !== undefined ? { reason: s.reason } : {}),
  }));
  const supported = statements.filter((s) => s.supported).length;
  return {
    statements,
    supported,
    total: statements.length,
    score: statements.length ? supported / statements.length : 0,
  };
}

export interface OpenAiJudgeOptions {
  /** e.g. `http://127.0.0.1:8000/v1`; the judge POSTs to `{baseUrl}/chat/completions`. */
  baseUrl: string;
  model: string;
  apiKey?: string | undefined;
  timeoutMs: number;
  /** Tokens the judge may write; a verdict lists every statement. */
  maxTokens?: number | undefined;
  fetch?: typeof fetch | undefined;
}

const completionSchema = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string().nullable() }) })).min(1),
});

/** A judge behind any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, llama.cpp server, Ollama). */
export function createOpenAiJudge(options: OpenAiJudgeOptions): FaithfulnessJudge {
  const url = `${options.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  const post = options.fetch ?? fetch;
  return {
    model: options.model,
    promptVersion: JUDGE_PROMPT_VERSION,
    async judge(input, signal) {
      const timeout = AbortSignal.timeout(options.timeoutMs);
      let response: Response;
      let body: string;
      try {
        response = await post(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
          },
          body: JSON.stringify({
            model: options.model,
            messages: judgeMessages(input),
            temperature: 0,
            max_tokens: options.maxTokens ?? 1024,
          }),
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
        body = await response.text();
      } catch (error) {
        // Cancelling the evaluation is not a judge failure: it stops the run.
        if (signal?.aborted) throw error;
        const reason = timeout.aborted ? `no reply within ${options.timeoutMs} ms` : (error as Error).message;
        throw new JudgeError(`judge request to ${url} failed: ${reason}`, { url }, { cause: error });
      }
      if (!response.ok) {
        throw new JudgeError(`judge answered HTTP ${response.status}`, {
          url,
          status: response.status,
          body: body.slice(0, 200),
        });
      }
      let content: string | null | undefined;
      try {
        content = completionSchema.parse(JSON.parse(body)).choices[0]?.message.content;
      } catch (error) {
        throw new JudgeError(
          'judge reply is not a chat completion',
          { url, body: body.slice(0, 200) },
          { cause: error },
        );
      }
      if (!content) throw new JudgeError('judge reply has no content', { url });
      return parseJudgeVerdict(content);
    },
  };
}
