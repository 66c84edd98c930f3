import type { FastifyInstance } from 'fastify';
import { NotFoundError } from '../core/errors.ts';
import type { AnswerRecord, AnswerStore } from './answers.ts';
import { provenanceJson } from './provenance.ts';
import { trimmedJson, usageJson } from './usage.ts';

function answerJson(answer: AnswerRecord) {
  return {
    id: answer.id,
    conversation_id: answer.conversationId,
    model: answer.model,
    model_version: answer.modelVersion,
    status: answer.status,
    finish_reason: answer.finishReason,
    error: answer.error,
    messages: answer.messages,
    prompt: answer.prompt,
    answer: answer.answer,
    params: answer.params,
    sources: answer.sources,
    trimmed: trimmedJson(answer.trimmed),
    // Null for answers recorded before provenance was kept.
    provenance: answer.provenance ? provenanceJson(answer.provenance) : null,
    usage: usageJson(answer),
    ttft_ms: answer.ttftMs,
    latency_ms: answer.latencyMs,
    compute_ms: answer.computeMs,
    cost: answer.cost,
    created_at: answer.createdAt,
    finished_at: answer.finishedAt,
  };
}

/** Answer records for the chat UI, feedback and operators: one answer, or every turn of a conversation. */
export function registerAnswerRoutes(app: FastifyInstance, answers: AnswerStore): void {
  app.get<{ Params: { id: string } }>('/v1/answers/:id', async (request) => {
    const answer = await answers.get(request.params.id);
    if (!answer) throw new NotFoundError('answer', request.params.id);
    return answerJson(answer);
  });

  app.get<{ Params: { id: string } }>('/v1/conversations/:id/answers', async (request) => {
    return { data: (await answers.listConversation(request.params.id)).map(answerJson) };
  });
}
