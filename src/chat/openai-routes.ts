import type { FastifyInstance, FastifyReply } from 'fastify';
import { describeError } from '../core/error-body.ts';
import { UnavailableError, ValidationError } from '../core/errors.ts';
import type { ChatMessage, CompletionResult, FinishReason, TokenLogprob, ToolCall } from '../llm/index.ts';
import type { AnswerSource } from './answers.ts';
import { ModelNotFoundError, UnsupportedParameterError } from './errors.ts';
import {
  generationParams,
  type OpenAiMessage,
  parseChatCompletionBody,
  parseCompletionBody,
  responseFormatOf,
  toolsOf,
} from './openai-request.ts';
import { provenanceJson } from './provenance.ts';
import type { ChatChoice, ChatService, ChatStart } from './service.ts';
import { trimmedJson, usageJson } from './usage.ts';

/** OpenAI's default for the legacy completions API. */
const DEFAULT_COMPLETION_TOKENS = 16;

type OpenAiErrorType = 'invalid_request_error' | 'rate_limit_error' | 'server_error';

/** OpenAI's error body: https://platform.openai.com/docs/guides/error-codes */
export function openAiErrorBody(error: unknown): {
  status: number;
  body: { error: { message: string; type: OpenAiErrorType; param: string | null; code: string } };
} {
  const described = describeError(error);
  const param = typeof described.details?.param === 'string' ? described.details.param : null;
  let type: OpenAiErrorType = 'server_error';
  let code = described.code;
  if (described.status === 429) {
    type = 'rate_limit_error';
    code = 'rate_limit_exceeded';
  } else if (described.status < 500) type = 'invalid_request_error';
  if (described.status === 404 && code === 'model_not_found') {
    return { status: 404, body: { error: { message: described.message, type, param: 'model', code } } };
  }
  return { status: described.status, body: { error: { message: described.message, type, param, code } } };
}

function textOf(content: OpenAiMessage['content']): string {
  if (typeof content === 'string') return content;
  return (content ?? []).map((part) => part.text).join('');
}

function toMessages(messages: OpenAiMessage[]): ChatMessage[] {
  return messages.map((message) => ({
    // `developer` is OpenAI's newer name for the system role.
    role: message.role === 'developer' ? 'system' : message.role,
    content: textOf(message.content),
    ...(message.tool_calls && message.tool_calls.length > 0
      ? {
          toolCalls: message.tool_calls.map((call) => ({
            id: call.id,
            name: call.function.name,
            arguments: call.function.arguments,
          })),
        }
      : {}),
    ...(message.role === 'tool' && message.tool_call_id ? { toolCallId: message.tool_call_id } : {}),
  }));
}

/** OpenAI's `tool_calls` of an assistant message. */
function toolCallsJson(calls: ToolCall[]) {
  return calls.map((call) => ({
    id: call.id,
    type: 'function' as const,
    function: { name: call.name, arguments: call.arguments },
  }));
}

function sourcesJson(sources: AnswerSource[]) {
  return sources.map((source) => ({
    document_id: source.documentId,
    document_key: source.documentKey,
    document_version: source.documentVersion,
    chunk_id: source.chunkId,
    score: source.score,
  }));
}

function openAiFinishReason(reason: FinishReason): 'stop' | 'length' | 'tool_calls' {
  return reason === 'length' || reason === 'tool_calls' ? reason : 'stop';
}

/** Chat's `choices[].logprobs`: https://platform.openai.com/docs/api-reference/chat/object */
function chatLogprobsJson(tokens: TokenLogprob[]) {
  return {
    content: tokens.map((token) => ({
      token: token.token,
      logprob: token.logprob ?? 0,
      bytes: token.bytes,
      top_logprobs: token.top.map((alternative) => ({
        token: alternative.token,
        logprob: alternative.logprob,
        bytes: alternative.bytes,
      })),
    })),
    refusal: null,
  };
}

/** A JSON object that keeps its keys in order, those that read as numbers (a token `7`) included. */
class OrderedObject {
  constructor(readonly entries: Array<[string, number]>) {}
}

/** JSON.stringify, except that an OrderedObject keeps its order (a plain object puts `"7"` first). */
function jsonText(value: unknown): string {
  if (value instanceof OrderedObject) {
    return `{${value.entries.map(([key, item]) => `${JSON.stringify(key)}:${JSON.stringify(item)}`).join(',')}}`;
  }
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const fields = Object.entries(value).filter(([, item]) => item !== undefined);
    return `{${fields.map(([key, item]) => `${JSON.stringify(key)}:${jsonText(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Where each token's text begins in `text`, counted on the tokens' bytes so that a character
 * spread over several tokens counts once.
 */
function textOffsets(tokens: TokenLogprob[], text: string): number[] {
  const decoder = new TextDecoder();
  let decoded = '';
  const offsets = tokens.map((token) => {
    const at = decoded.length;
    decoded += decoder.decode(Uint8Array.from(token.bytes), { stream: true });
    return at;
  });
  decoded += decoder.decode();
  // SentencePiece tokenizers begin a text with a space the text itself does not have.
  const shift = decoded.startsWith(' ') && !text.startsWith(' ') ? 1 : 0;
  return offsets.map((offset) => Math.min(text.length, Math.max(0, offset - shift)));
}

/**
 * The legacy completions `logprobs` object over consecutive pieces of one choice's text (the
 * echoed prompt, then the generated text). `top_logprobs` maps hold the most likely tokens,
 * most likely first, and the chosen token (so up to `logprobs` + 1 entries, as OpenAI says).
 */
function completionLogprobsJson(pieces: Array<{ text: string; tokens: TokenLogprob[] }>) {
  const tokens: string[] = [];
  const tokenLogprobs: Array<number | null> = [];
  const topLogprobs: Array<OrderedObject | null> = [];
  const offsets: number[] = [];
  let base = 0;
  for (const piece of pieces) {
    const pieceOffsets = textOffsets(piece.tokens, piece.text);
    piece.tokens.forEach((token, i) => {
      tokens.push(token.token);
      tokenLogprobs.push(token.logprob);
      offsets.push(base + (pieceOffsets[i] as number));
      if (token.logprob === null) {
        topLogprobs.push(null);
        return;
      }
      const entries = new Map<string, number>();
      for (const alternative of token.top) {
        if (!entries.has(alternative.token)) entries.set(alternative.token, alternative.logprob);
      }
      if (!entries.has(token.token)) entries.set(token.token, token.logprob);
      topLogprobs.push(new OrderedObject([...entries]));
    });
    base += piece.text.length;
  }
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: topLogprobs, text_offset: offsets };
}

/** A completions choice's text in its pieces: the echoed prompt (when asked), then what was generated. */
function choicePieces(prompt: string, choice: CompletionResult, echo: boolean) {
  return [
    ...(echo ? [{ text: prompt, tokens: choice.promptLogprobs ?? [] }] : []),
    { text: choice.text, tokens: choice.logprobs ?? [] },
  ];
}

/** Aborted when the response closes before it finished: the client went away, stop generating. */
function abortOnClose(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('client disconnected'));
  });
  return controller;
}

function conversationOf(body: { conversation_id?: string | undefined }, headers: Record<string, unknown>) {
  const header = headers['x-conversation-id'];
  return body.conversation_id ?? (typeof header === 'string' && header ? header : undefined);
}

/** Writes one SSE event per generated piece: one per token (see the llama.cpp runtime). */
function createSseWriter(reply: FastifyReply, model: string, choices: number) {
  const raw = reply.raw;
  let base = '';
  /** One event for choice `index`; `fields` follow its index inside the choice object. */
  const event = (index: number, fields: string, extras = '') =>
    `data: ${base},"choices":[{"index":${index},${fields}}]${extras}}\n\n`;
  return {
    start(start: ChatStart) {
      reply.hijack();
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-request-id': String(reply.request.id),
        'x-conversation-id': start.conversationId,
      });
      base = `{"id":${JSON.stringify(start.id)},"object":"chat.completion.chunk","created":${start.created},"model":${JSON.stringify(model)}`;
      // Bertha's fields ride on the first chunk.
      const extras =
        `,"conversation_id":${JSON.stringify(start.conversationId)},"model_version":${JSON.stringify(start.modelVersion)},` +
        `"sources":${JSON.stringify(sourcesJson(start.sources))},"trimmed":${JSON.stringify(trimmedJson(start.trimmed))},` +
        `"provenance":${JSON.stringify(provenanceJson(start.provenance))}`;
      for (let index = 0; index < choices; index++) {
        raw.write(
          event(
            index,
            '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null',
            index === 0 ? extras : '',
          ),
        );
      }
    },
    text(piece: string, index: number) {
      if (piece)
        raw.write(event(index, `"delta":{"content":${JSON.stringify(piece)}},"logprobs":null,"finish_reason":null`));
    },
    choice(index: number, choice: ChatChoice) {
      // A call is complete only once its arguments are: each goes out whole, in one delta.
      if (choice.toolCalls && choice.toolCalls.length > 0) {
        const calls = toolCallsJson(choice.toolCalls).map((call, callIndex) => ({ index: callIndex, ...call }));
        raw.write(event(index, `"delta":{"tool_calls":${JSON.stringify(calls)}},"logprobs":null,"finish_reason":null`));
      }
      // The runtime scores a choice once it is complete: its logprobs follow its text.
      if (choice.logprobs && choice.logprobs.length > 0) {
        raw.write(
          event(
            index,
            `"delta":{},"logprobs":${JSON.stringify(chatLogprobsJson(choice.logprobs))},"finish_reason":null`,
          ),
        );
      }
      raw.write(
        event(index, `"delta":{},"logprobs":null,"finish_reason":"${openAiFinishReason(choice.finishReason)}"`),
      );
    },
    usage(usage: ReturnType<typeof usageJson>) {
      raw.write(`data: ${base},"choices":[],"usage":${JSON.stringify(usage)}}\n\n`);
    },
    error(error: unknown) {
      raw.write(`data: ${JSON.stringify(openAiErrorBody(error).body)}\n\n`);
    },
    end() {
      raw.end('data: [DONE]\n\n');
    },
  };
}

/** `POST /v1/chat/completions` and `GET /v1/models`, speaking OpenAI's wire format, errors included. */
export function registerOpenAiRoutes(app: FastifyInstance, chat: ChatService): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error, request, reply) => {
      const { status, body } = openAiErrorBody(error);
      if (status >= 500 && !(error instanceof UnavailableError)) request.log.error({ err: error }, 'request failed');
      else request.log.info({ code: body.error.code, reason: body.error.message }, 'request rejected');
      if (error instanceof UnavailableError) reply.header('retry-after', String(error.retryAfterSeconds));
      return reply.status(status).send(body);
    });

    const modelObject = () => ({
      id: chat.modelName,
      object: 'model' as const,
      created: 0,
      owned_by: 'bertha',
      model_version: chat.bundle()?.version ?? null,
    });

    scope.get('/v1/models', async () => ({ object: 'list', data: [modelObject()] }));

    scope.get<{ Params: { model: string } }>('/v1/models/:model', async (request) => {
      if (request.params.model !== chat.modelName) throw new ModelNotFoundError(request.params.model, chat.modelName);
      return modelObject();
    });

    scope.post('/v1/chat/completions', async (request, reply) => {
      const body = parseChatCompletionBody(request.body);
      if (body.top_logprobs != null && !body.logprobs) {
        throw new ValidationError('invalid request body: top_logprobs needs logprobs: true', { param: 'top_logprobs' });
      }
      const controller = abortOnClose(reply);
      const n = body.n ?? 1;
      const chatRequest = {
        model: body.model,
        messages: toMessages(body.messages),
        params: generationParams(body, body.max_completion_tokens ?? body.max_tokens ?? undefined),
        n,
        responseFormat: responseFormatOf(body),
        ...toolsOf(body),
        logprobs: body.logprobs ? (body.top_logprobs ?? 0) : undefined,
        conversationId: conversationOf(body, request.headers),
        signal: controller.signal,
      };

      if (!body.stream) {
        const answer = await chat.complete(chatRequest);
        reply.header('x-conversation-id', answer.conversationId);
        return {
          id: answer.id,
          object: 'chat.completion',
          created: answer.created,
          model: body.model,
          choices: answer.choices.map((choice, index) => ({
            index,
            message:
              choice.toolCalls && choice.toolCalls.length > 0
                ? {
                    role: 'assistant',
                    content: choice.text || null,
                    tool_calls: toolCallsJson(choice.toolCalls),
                    refusal: null,
                  }
                : { role: 'assistant', content: choice.text, refusal: null },
            logprobs: choice.logprobs ? chatLogprobsJson(choice.logprobs) : null,
            finish_reason: openAiFinishReason(choice.finishReason),
          })),
          usage: usageJson(answer),
          conversation_id: answer.conversationId,
          model_version: answer.modelVersion,
          sources: sourcesJson(answer.sources),
          trimmed: trimmedJson(answer.trimmed),
          provenance: provenanceJson(answer.provenance),
        };
      }

      const sse = createSseWriter(reply, body.model, n);
      try {
        const answer = await chat.complete(chatRequest, {
          onStart: (start) => sse.start(start),
          onText: (piece, index) => sse.text(piece, index),
          onChoice: (index, choice) => sse.choice(index, choice),
        });
        if (controller.signal.aborted) return reply;
        if (body.stream_options?.include_usage) sse.usage(usageJson(answer));
        sse.end();
        return reply;
      } catch (error) {
        // Before the first chunk the error handler answers with a status; after it, the
        // stream carries the error as its last event (as OpenAI's own servers do).
        if (!reply.sent) throw error;
        if (!controller.signal.aborted) {
          sse.error(error);
          sse.end();
        }
        return reply;
      }
    });

    scope.post('/v1/completions', async (request, reply) => {
      const body = parseCompletionBody(request.body);
      const prompts = typeof body.prompt === 'string' ? [body.prompt] : body.prompt;
      if (prompts.length === 0) throw new ValidationError('invalid request body: prompt: empty', { param: 'prompt' });
      if (!prompts.every((prompt): prompt is string => typeof prompt === 'string')) {
        throw new ValidationError(
          'invalid request body: prompt: token ids are not supported, send text (lm-evaluation-harness: tokenized_requests=False)',
          { param: 'prompt' },
        );
      }
      if (body.suffix) throw new UnsupportedParameterError('suffix', 'infilling is not supported');
      const n = body.n ?? 1;
      if (body.best_of != null && body.best_of !== n) {
        throw new UnsupportedParameterError(
          'best_of',
          'choosing the best of several completions is not supported (best_of must equal n)',
        );
      }
      const controller = abortOnClose(reply);
      const echo = body.echo === true;
      const logprobs = body.logprobs ?? undefined;
      const completionRequest = {
        model: body.model,
        prompts,
        params: generationParams(body, body.max_tokens ?? DEFAULT_COMPLETION_TOKENS),
        n,
        logprobs,
        promptLogprobs: echo && logprobs !== undefined,
        conversationId: conversationOf(body, request.headers),
        signal: controller.signal,
      };
      const promptOf = (index: number) => prompts[Math.floor(index / n)] as string;
      if (!body.stream) {
        const completion = await chat.completePrompts(completionRequest);
        const json = {
          id: completion.id,
          object: 'text_completion',
          created: completion.created,
          model: body.model,
          choices: completion.choices.map((choice, index) => {
            const pieces = choicePieces(promptOf(index), choice, echo);
            return {
              index,
              text: pieces.map((piece) => piece.text).join(''),
              logprobs: logprobs !== undefined ? completionLogprobsJson(pieces) : null,
              finish_reason: openAiFinishReason(choice.finishReason),
            };
          }),
          usage: usageJson(completion),
          model_version: completion.modelVersion,
        };
        return reply.type('application/json; charset=utf-8').send(jsonText(json));
      }

      let head = '';
      const chunk = (index: number, text: string, logprobsJson: unknown, finish: string | null) =>
        `data: ${head},"choices":[{"index":${index},"text":${JSON.stringify(text)},"logprobs":${jsonText(logprobsJson)},"finish_reason":${JSON.stringify(finish)}}]}\n\n`;
      try {
        const completion = await chat.completePrompts(completionRequest, {
          onStart: (start) => {
            reply.hijack();
            reply.raw.writeHead(200, {
              'content-type': 'text/event-stream; charset=utf-8',
              'cache-control': 'no-cache',
              connection: 'keep-alive',
              'x-request-id': String(request.id),
            });
            head = `{"id":${JSON.stringify(start.id)},"object":"text_completion","created":${start.created},"model":${JSON.stringify(body.model)},"model_version":${JSON.stringify(start.modelVersion)}`;
            if (echo) {
              for (let index = 0; index < prompts.length * n; index++) {
                reply.raw.write(chunk(index, promptOf(index), null, null));
              }
            }
          },
          onText: (index, piece) => {
            if (piece) reply.raw.write(chunk(index, piece, null, null));
          },
          onChoice: (index, choice) => {
            // Log-probabilities come once the choice is complete, in a chunk of their own.
            if (logprobs !== undefined) {
              const pieces = choicePieces(promptOf(index), choice, echo);
              reply.raw.write(chunk(index, '', completionLogprobsJson(pieces), null));
            }
            reply.raw.write(chunk(index, '', null, openAiFinishReason(choice.finishReason)));
          },
        });
        if (controller.signal.aborted) return reply;
        if (body.stream_options?.include_usage) {
          reply.raw.write(`data: ${head},"choices":[],"usage":${JSON.stringify(usageJson(completion))}}\n\n`);
        }
        reply.raw.end('data: [DONE]\n\n');
        return reply;
      } catch (error) {
        if (!reply.sent) throw error;
        if (!controller.signal.aborted) {
          reply.raw.write(`data: ${JSON.stringify(openAiErrorBody(error).body)}\n\n`);
          reply.raw.end('data: [DONE]\n\n');
        }
        return reply;
      }
    });
  });
}
