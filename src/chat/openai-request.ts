import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { parseInput } from '../core/validate.ts';
import type { GenerationParams, ResponseFormat, ToolChoice, ToolDefinition } from '../llm/index.ts';
import { UnsupportedParameterError } from './errors.ts';

// Request shapes after https://platform.openai.com/docs/api-reference/chat/create and
// .../completions/create. Every field a body carries is either honoured, one of the few that
// change nothing here (IGNORED), or refused with a 400 naming it: a client must not get an
// answer that silently ignores what it asked for.

/** OpenAI fields accepted and ignored: bookkeeping for OpenAI's own platform, no effect on the answer. */
const IGNORED = [
  'user',
  'metadata',
  'store',
  'safety_identifier',
  'prompt_cache_key',
  'prompt_cache_retention',
  'service_tier',
] as const;

const LEGACY_FUNCTIONS = 'the deprecated functions API is not supported: send tools and tool_choice';

/** OpenAI fields refused with a reason, unless they carry their "off" value (what some clients send by default). */
const REFUSED: Record<string, { reason: string; off: (value: unknown) => boolean }> = {
  functions: { reason: LEGACY_FUNCTIONS, off: (value) => Array.isArray(value) && value.length === 0 },
  function_call: { reason: LEGACY_FUNCTIONS, off: (value) => value === 'none' },
  modalities: {
    reason: 'only text output is supported',
    off: (value) => Array.isArray(value) && value.every((modality) => modality === 'text'),
  },
  audio: { reason: 'audio output is not supported', off: () => false },
  prediction: { reason: 'predicted outputs are not supported', off: () => false },
  web_search_options: { reason: 'web search is not supported', off: () => false },
  reasoning_effort: { reason: 'the served model has no reasoning effort setting', off: () => false },
  verbosity: { reason: 'the served model has no verbosity setting', off: () => false },
};

/** Most choices one request may ask for: they are generated one after another on one slot. */
export const MAX_CHOICES = 16;

const stopSchema = z.union([z.string(), z.array(z.string()).max(4)]).nullish();
const penaltySchema = z.number().min(-2).max(2).nullish();
/** Token id (as a JSON object key) to a bias added to its logit. */
const logitBiasSchema = z
  .record(z.string().regex(/^\d+$/, 'keys are token ids'), z.number().min(-100).max(100))
  .nullish();
const choicesSchema = z
  .number()
  .int()
  .min(1)
  .max(MAX_CHOICES, `at most ${MAX_CHOICES} choices per request (they are generated one after another)`)
  .nullish();
const streamOptionsSchema = z.object({ include_usage: z.boolean().nullish() }).nullish();
/** Bertha's extension: turns sharing an id form one conversation in the answer records. */
const conversationIdSchema = z.string().min(1).max(200).optional();

const textPart = z.object({ type: z.literal('text'), text: z.string() });
/** OpenAI's limit on a function's name. */
const functionName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'a function name is 1 to 64 letters, digits, _ or -');
const toolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal('function'),
  function: z.object({ name: functionName, arguments: z.string() }),
});
export const messageSchema = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
    content: z.union([z.string(), z.array(textPart)]).nullish(),
    name: z.string().optional(),
    /** An assistant turn's calls. */
    tool_calls: z.array(toolCallSchema).nullish(),
    /** The call a `tool` turn answers. */
    tool_call_id: z.string().min(1).nullish(),
  })
  .superRefine((message, context) => {
    if (message.role === 'tool' && !message.tool_call_id) {
      context.addIssue({ code: 'custom', path: ['tool_call_id'], message: 'required on a tool message' });
    }
    if (message.tool_calls && message.tool_calls.length > 0 && message.role !== 'assistant') {
      context.addIssue({ code: 'custom', path: ['tool_calls'], message: 'only an assistant message makes tool calls' });
    }
  });

const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: functionName,
    description: z.string().nullish(),
    /** JSON Schema of the arguments object. */
    parameters: z.record(z.string(), z.unknown()).nullish(),
    /** Arguments always follow the schema here: every call is sampled under its grammar. */
    strict: z.boolean().nullish(),
  }),
});
const toolChoiceSchema = z
  .union([
    z.enum(['none', 'auto', 'required']),
    z.object({ type: z.literal('function'), function: z.object({ name: functionName }) }),
  ])
  .nullish();

const responseFormatSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('text') }),
    z.object({ type: z.literal('json_object') }),
    z.object({
      type: z.literal('json_schema'),
      json_schema: z.object({
        name: z.string().min(1),
        description: z.string().nullish(),
        schema: z.record(z.string(), z.unknown()).nullish(),
        strict: z.boolean().nullish(),
      }),
    }),
  ])
  .nullish();

const chatCompletionSchema = z.object({
  model: z.string().min(1),
  messages: z.array(messageSchema).min(1),
  stream: z.boolean().nullish(),
  stream_options: streamOptionsSchema,
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  stop: stopSchema,
  seed: z.number().int().nullish(),
  n: choicesSchema,
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  logit_bias: logitBiasSchema,
  presence_penalty: penaltySchema,
  frequency_penalty: penaltySchema,
  response_format: responseFormatSchema,
  tools: z.array(toolSchema).max(128).nullish(),
  tool_choice: toolChoiceSchema,
  parallel_tool_calls: z.boolean().nullish(),
  conversation_id: conversationIdSchema,
});

// The legacy completions API as lm-evaluation-harness's `local-completions` calls it.
const completionSchema = z.object({
  model: z.string().min(1),
  prompt: z.union([z.string(), z.array(z.string()), z.array(z.number()), z.array(z.array(z.number()))], {
    error: (issue) =>
      issue.input === undefined ? 'required: the text to complete' : 'expected a string or an array of strings',
  }),
  suffix: z.string().nullish(),
  stream: z.boolean().nullish(),
  stream_options: streamOptionsSchema,
  echo: z.boolean().nullish(),
  logprobs: z.number().int().min(0).max(20).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().min(0).nullish(),
  stop: stopSchema,
  seed: z.number().int().nullish(),
  n: choicesSchema,
  best_of: z.number().int().min(1).nullish(),
  logit_bias: logitBiasSchema,
  presence_penalty: penaltySchema,
  frequency_penalty: penaltySchema,
  /** Bertha's extension: served as a chat turn of this conversation would be (a canary's share). */
  conversation_id: conversationIdSchema,
});

export type ChatCompletionBody = z.infer<typeof chatCompletionSchema>;
export type CompletionBody = z.infer<typeof completionSchema>;
export type OpenAiMessage = z.infer<typeof messageSchema>;

/** Refuses the first field of `body` that `shape` does not honour and that is not harmless to ignore. */
function refuseUnhonoured(body: unknown, shape: Record<string, unknown>): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
  for (const [field, value] of Object.entries(body)) {
    if (field in shape || (IGNORED as readonly string[]).includes(field) || value === null || value === undefined) {
      continue;
    }
    const refusal = REFUSED[field];
    if (refusal?.off(value)) continue;
    throw new UnsupportedParameterError(field, refusal?.reason ?? 'unknown parameter');
  }
}

export function parseChatCompletionBody(body: unknown): ChatCompletionBody {
  refuseUnhonoured(body, chatCompletionSchema.shape);
  const parsed = parseInput(chatCompletionSchema, body);
  const tools = parsed.tools ?? [];
  const names = new Set(tools.map((tool) => tool.function.name));
  if (names.size < tools.length) {
    throw new ValidationError('invalid request body: tools: two tools share a name', { param: 'tools' });
  }
  const choice = parsed.tool_choice;
  if ((choice === 'required' || typeof choice === 'object') && tools.length === 0) {
    throw new ValidationError('invalid request body: tool_choice: asks for a tool call, but there are no tools', {
      param: 'tool_choice',
    });
  }
  if (typeof choice === 'object' && choice !== null && !names.has(choice.function.name)) {
    throw new ValidationError(
      `invalid request body: tool_choice: function '${choice.function.name}' is not among the tools`,
      { param: 'tool_choice' },
    );
  }
  return parsed;
}

export function parseCompletionBody(body: unknown): CompletionBody {
  refuseUnhonoured(body, completionSchema.shape);
  return parseInput(completionSchema, body);
}

/** The sampling fields both APIs share, as the runtime port names them. */
export function generationParams(
  body: Pick<
    ChatCompletionBody,
    'temperature' | 'top_p' | 'stop' | 'seed' | 'logit_bias' | 'presence_penalty' | 'frequency_penalty'
  >,
  maxTokens: number | undefined,
): GenerationParams {
  const stop = typeof body.stop === 'string' ? [body.stop] : (body.stop ?? undefined);
  return {
    temperature: body.temperature ?? undefined,
    topP: body.top_p === 0 ? Number.MIN_VALUE : (body.top_p ?? undefined),
    maxTokens,
    stop: stop && stop.length > 0 ? stop : undefined,
    seed: body.seed ?? undefined,
    logitBias: body.logit_bias && Object.keys(body.logit_bias).length > 0 ? body.logit_bias : undefined,
    presencePenalty: body.presence_penalty || undefined,
    frequencyPenalty: body.frequency_penalty || undefined,
  };
}

/** The tools, choice and parallelism of a chat request, as the runtime port names them. */
export function toolsOf(body: ChatCompletionBody): {
  tools: ToolDefinition[] | undefined;
  toolChoice: ToolChoice | undefined;
  parallelToolCalls: boolean | undefined;
} {
  const tools = body.tools?.map((tool) => ({
    name: tool.function.name,
    description: tool.function.description ?? undefined,
    parameters: tool.function.parameters ?? undefined,
  }));
  const choice = body.tool_choice;
  return {
    tools: tools && tools.length > 0 ? tools : undefined,
    toolChoice: typeof choice === 'object' && choice !== null ? { name: choice.function.name } : (choice ?? undefined),
    parallelToolCalls: body.parallel_tool_calls ?? undefined,
  };
}

export function responseFormatOf(body: ChatCompletionBody): ResponseFormat | undefined {
  const format = body.response_format;
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  return {
    type: 'json_schema',
    name: format.json_schema.name,
    schema: format.json_schema.schema ?? undefined,
    strict: format.json_schema.strict ?? undefined,
  };
}
