import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { type AnswerSource, type ChatService, type ChatStart, ModelNotFoundError } from '../../chat/index.ts';
import { UnavailableError } from '../../core/errors.ts';
import type { ChatMessage, FinishReason } from '../../llm/index.ts';
import { describeError } from '../http.ts';
import { usageJson } from '../usage.ts';
import { parseInput } from '../validate.ts';

// Request shape after https://platform.openai.com/docs/api-reference/chat/create. Unknown
// fields are dropped, not refused: LangChain and LlamaIndex clients send defaults such as
// `n: 1` or `presence_penalty: 0` that a strict schema would reject.
const textPart = z.object({ type: z.literal('text'), text: z.string() });
const messageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(textPart)]).nullish(),
  name: z.string().optional(),
});
const chatCompletionSchema = z.object({
  model: z.string().min(1),
  messages: z.array(messageSchema).min(1),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  max_completion_tokens: z.number().int().positive().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  seed: z.number().int().nullish(),
  n: z.literal(1, 'only n=1 is supported').nullish(),
  /** Bertha's extension: turns sharing an id form one conversation in the answer records. */
  conversation_id: z.string().min(1).max(200).optional(),
});

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

function textOf(content: z.infer<typeof messageSchema>['content']): string {
  if (typeof content === 'string') return content;
  return (content ?? []).map((part) => part.text).join('');
}

function toMessages(messages: z.infer<typeof messageSchema>[]): ChatMessage[] {
  // `developer` is OpenAI's newer name for the system role.
  return messages.map((message) => ({
    role: message.role === 'developer' ? 'system' : message.role,
    content: textOf(message.content),
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

function openAiFinishReason(reason: FinishReason): 'stop' | 'length' {
  return reason === 'length' ? 'length' : 'stop';
}

/** Writes one SSE event per generated piece; the JSON around the text is built once per answer. */
function createSseWriter(reply: FastifyReply, model: string) {
  const raw = reply.raw;
  let head = '';
  let tail = '';
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
      const base = `{"id":${JSON.stringify(start.id)},"object":"chat.completion.chunk","created":${start.created},"model":${JSON.stringify(model)}`;
      head = `data: ${base},"choices":[{"index":0,"delta":{"content":`;
      tail = '},"logprobs":null,"finish_reason":null}]}\n\n';
      raw.write(
        `data: ${base},"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],` +
          `"conversation_id":${JSON.stringify(start.conversationId)},"model_version":${JSON.stringify(start.modelVersion)},` +
          `"sources":${JSON.stringify(sourcesJson(start.sources))}}\n\n`,
      );
      return base;
    },
    text(piece: string) {
      if (piece) raw.write(head + JSON.stringify(piece) + tail);
    },
    write(event: string) {
      raw.write(event);
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
      else request.log.info({ code: body.error.code, msg: body.error.message }, 'request rejected');
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
      const body = parseInput(chatCompletionSchema, request.body);
      const controller = new AbortController();
      // The response closing before it finished means the client went away: stop generating.
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) controller.abort(new Error('client disconnected'));
      });
      const headerConversation = request.headers['x-conversation-id'];
      const conversationId =
        body.conversation_id ??
        (typeof headerConversation === 'string' && headerConversation ? headerConversation : undefined);
      const stop = typeof body.stop === 'string' ? [body.stop] : (body.stop ?? undefined);
      const chatRequest = {
        model: body.model,
        messages: toMessages(body.messages),
        params: {
          temperature: body.temperature ?? undefined,
          topP: body.top_p === 0 ? Number.MIN_VALUE : (body.top_p ?? undefined),
          maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
          stop: stop && stop.length > 0 ? stop : undefined,
          seed: body.seed ?? undefined,
        },
        conversationId,
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
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: answer.text, refusal: null },
              logprobs: null,
              finish_reason: openAiFinishReason(answer.finishReason),
            },
          ],
          usage: usageJson(answer),
          conversation_id: answer.conversationId,
          model_version: answer.modelVersion,
          sources: sourcesJson(answer.sources),
        };
      }

      const sse = createSseWriter(reply, body.model);
      let base = '';
      try {
        const answer = await chat.complete(chatRequest, {
          onStart: (start) => {
            base = sse.start(start);
          },
          onText: (piece) => sse.text(piece),
        });
        if (controller.signal.aborted) return reply;
        sse.write(
          `data: ${base},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"${openAiFinishReason(answer.finishReason)}"}]}\n\n`,
        );
        if (body.stream_options?.include_usage) {
          sse.write(`data: ${base},"choices":[],"usage":${JSON.stringify(usageJson(answer))}}\n\n`);
        }
        sse.end();
        return reply;
      } catch (error) {
        // Before the first chunk the error handler answers with a status; after it, the
        // stream carries the error as its last event (as OpenAI's own servers do).
        if (!reply.sent) throw error;
        if (!controller.signal.aborted) {
          sse.write(`data: ${JSON.stringify(openAiErrorBody(error).body)}\n\n`);
          sse.end();
        }
        return reply;
      }
    });
  });
}
