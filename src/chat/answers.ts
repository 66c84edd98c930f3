import type { Insertable, Selectable } from 'kysely';
import type { AnswersTable, MetadataDb } from '../db/index.ts';
import type { ChatMessage, FinishReason, GenerationParams, ToolCall } from '../llm/index.ts';
import { NOTHING_TRIMMED, type PromptTrim } from './context-budget.ts';
import type { AnswerProvenance } from './provenance.ts';

/** Where a passage in the prompt came from; stored with the answer so feedback traces to data. */
export interface AnswerSource {
  documentId: string;
  documentKey: string;
  documentVersion: string;
  chunkId: string;
  score: number;
}

export type AnswerStatus = 'completed' | 'cancelled' | 'failed';

export interface AnswerRecord {
  id: string;
  conversationId: string;
  model: string;
  modelVersion: string;
  messages: ChatMessage[];
  prompt: string;
  /** The answer's text; with tool calls, what the model wrote before them. */
  answer: string;
  /** The calls the answer ended with. */
  toolCalls?: ToolCall[] | undefined;
  params: GenerationParams;
  sources: AnswerSource[];
  trimmed: PromptTrim;
  /** What produced the answer; absent on answers recorded before it was kept. */
  provenance?: AnswerProvenance | undefined;
  status: AnswerStatus;
  finishReason: FinishReason | null;
  error: string | null;
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
  ttftMs: number | null;
  latencyMs: number;
  computeMs: number;
  cost: number;
  createdAt: string;
  finishedAt: string;
}

export interface AnswerStore {
  record(answer: AnswerRecord): Promise<void>;
  get(id: string): Promise<AnswerRecord | undefined>;
  /** Turns of one conversation, oldest first. */
  listConversation(conversationId: string): Promise<AnswerRecord[]>;
}

function toRow(answer: AnswerRecord): Insertable<AnswersTable> {
  return {
    id: answer.id,
    conversation_id: answer.conversationId,
    model: answer.model,
    model_version: answer.modelVersion,
    messages_json: JSON.stringify(answer.messages),
    prompt: answer.prompt,
    answer: answer.answer,
    // The answer's calls ride with its finish reason: both say how it ended.
    params_json: JSON.stringify({ ...answer.params, finishReason: answer.finishReason, toolCalls: answer.toolCalls }),
    sources_json: JSON.stringify(answer.sources),
    trimmed_json: JSON.stringify(answer.trimmed),
    provenance_json: answer.provenance ? JSON.stringify(answer.provenance) : null,
    status: answer.status,
    error: answer.error,
    prompt_tokens: answer.promptTokens,
    cached_prompt_tokens: answer.cachedPromptTokens,
    completion_tokens: answer.completionTokens,
    ttft_ms: answer.ttftMs,
    latency_ms: answer.latencyMs,
    compute_ms: answer.computeMs,
    cost: answer.cost,
    created_at: answer.createdAt,
    finished_at: answer.finishedAt,
  };
}

function fromRow(row: Selectable<AnswersTable>): AnswerRecord {
  const { finishReason, toolCalls, ...params } = JSON.parse(row.params_json) as GenerationParams & {
    finishReason: FinishReason | null;
    toolCalls?: ToolCall[];
  };
  return {
    id: row.id,
    conversationId: row.conversation_id ?? '',
    model: row.model,
    modelVersion: row.model_version,
    messages: JSON.parse(row.messages_json) as ChatMessage[],
    prompt: row.prompt,
    answer: row.answer,
    ...(toolCalls ? { toolCalls } : {}),
    params,
    sources: JSON.parse(row.sources_json) as AnswerSource[],
    trimmed: row.trimmed_json ? (JSON.parse(row.trimmed_json) as PromptTrim) : NOTHING_TRIMMED,
    ...(row.provenance_json ? { provenance: JSON.parse(row.provenance_json) as AnswerProvenance } : {}),
    status: row.status as AnswerStatus,
    finishReason: finishReason ?? null,
    error: row.error,
    promptTokens: Number(row.prompt_tokens),
    cachedPromptTokens: Number(row.cached_prompt_tokens),
    completionTokens: Number(row.completion_tokens),
    ttftMs: row.ttft_ms === null ? null : Number(row.ttft_ms),
    latencyMs: Number(row.latency_ms),
    computeMs: Number(row.compute_ms),
    cost: Number(row.cost),
    createdAt: row.created_at,
    finishedAt: row.finished_at ?? row.created_at,
  };
}

export function createAnswerStore(db: MetadataDb): AnswerStore {
  return {
    async record(answer) {
      await db.kysely.insertInto('answers').values(toRow(answer)).execute();
    },
    async get(id) {
      const row = await db.kysely.selectFrom('answers').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? fromRow(row) : undefined;
    },
    async listConversation(conversationId) {
      const rows = await db.kysely
        .selectFrom('answers')
        .selectAll()
        .where('conversation_id', '=', conversationId)
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map(fromRow);
    },
  };
}
