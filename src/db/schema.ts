import type { Generated } from 'kysely';

/**
 * Table types shared by every capability. Conventions that keep one schema valid on
 * SQLite and PostgreSQL alike:
 * - ids are text (see core/ids.ts), timestamps ISO-8601 UTC text (`*_at`);
 * - JSON documents are text columns (`*_json`), parsed by the store that owns them;
 * - flags are integers 0/1; counts are `integer` (PostgreSQL returns `bigint` as a string).
 */
export interface EventsTable {
  id: string;
  seq: Generated<number>;
  type: string;
  source: string;
  subject: string | null;
  /** Set when the producer can recognise a redelivery (alert fingerprint, S3 sequencer). */
  dedupe_key: string | null;
  payload_json: string;
  created_at: string;
}

/** A chat completion as served: what was asked, what was answered, by which model bundle, from which sources. */
export interface AnswersTable {
  id: string;
  conversation_id: string | null;
  /** The model name the client asked for. */
  model: string;
  /** The model bundle version that answered (registry version, or `local`/`upstream` ids). */
  model_version: string;
  messages_json: string;
  /** The exact prompt text given to the runtime, retrieval context included. */
  prompt: string;
  answer: string;
  /** temperature, top_p, max_tokens, stop, seed as requested. */
  params_json: string;
  /** Retrieved chunks: document id, document version, chunk id, score. */
  sources_json: string;
  /** `completed`, `cancelled` or `failed`. */
  status: string;
  error: string | null;
  prompt_tokens: number;
  completion_tokens: number;
  ttft_ms: number | null;
  latency_ms: number;
  /** Time the runtime spent on the answer: what local models are priced by. */
  compute_ms: number;
  /** Tokens x price (upstream) or compute seconds x price (local), in the configured currency. */
  cost: number;
  created_at: string;
  finished_at: string | null;
}

/**
 * A sensor's decision to start a pipeline. Written by sensors; claimed by the pipeline runner,
 * which sets `launched` and `run_id`. Status: `pending`, `launched`, `skipped` (debounced or
 * blocked by the concurrency policy; `reason` says which), `failed`.
 */
export interface PipelineTriggersTable {
  id: string;
  sensor: string;
  event_id: string | null;
  pipeline: string;
  params_json: string;
  /** Triggers with the same key never run concurrently (e.g. `llm-retraining:<model version>`). */
  concurrency_key: string | null;
  status: string;
  reason: string | null;
  run_id: string | null;
  created_at: string;
  updated_at: string;
}

/** An API key (roles `viewer` < `operator` < `admin`); the key itself is shown once and never stored. */
export interface ApiKeysTable {
  id: string;
  name: string;
  role: string;
  /** SHA-256 hex of the key: keys are 256-bit random, so a slow hash adds nothing. */
  key_hash: string;
  /** The first characters of the key, to tell keys apart in listings. */
  key_prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface Database {
  events: EventsTable;
  answers: AnswersTable;
  pipeline_triggers: PipelineTriggersTable;
  api_keys: ApiKeysTable;
}
