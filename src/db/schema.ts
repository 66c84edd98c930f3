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

/** A user's current vote on one answer (one per answer and user; a new vote replaces it). */
export interface FeedbackTable {
  id: string;
  /** The `answers` row voted on (the response id clients saw). */
  answer_id: string;
  /** From `x-bertha-user` or the request body; `anonymous` otherwise. */
  user_id: string;
  /** Copied from the answer so feedback filters and counts by model version without a join. */
  model_version: string;
  /** `up` or `down`. */
  rating: string;
  comment: string | null;
  correction: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Every vote cast, append-only. `counted` is 1 when the vote was new or changed the rating
 * (it incremented `bertha_feedback_total`); a repeat of the same rating is 0.
 */
export interface FeedbackVotesTable {
  id: string;
  feedback_id: string;
  model_version: string;
  rating: string;
  previous_rating: string | null;
  counted: number;
/** A pipeline run. Status: `queued`, `running`, `succeeded`, `failed`, `cancelled`. */
export interface PipelineRunsTable {
  id: string;
  pipeline: string;
  status: string;
  /** `local` (claimed by a local runner) or `argo` (each step runs as `bertha step` in a pod). */
  executor: string;
  params_json: string;
  /** `api`, `cli`, `trigger`, `schedule`. */
  source: string;
  trigger_id: string | null;
  concurrency_key: string | null;
  /** The runner that holds the run while `lease_until` is in the future. */
  owner: string | null;
  lease_until: string | null;
  cancel_requested: number;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

/** One step of a run. Status: `pending`, `running`, `succeeded`, `failed`, `cancelled`, `skipped`. */
export interface PipelineStepsTable {
  id: string;
  run_id: string;
  name: string;
  status: string;
  attempts: number;
  cache_key: string | null;
  /** The run whose artifacts this step reused through its cache key. */
  cached_from: string | null;
  progress: number | null;
  progress_message: string | null;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

/** One try of a step. Status: `running`, `succeeded`, `failed`, `interrupted`, `cancelled`. */
export interface PipelineAttemptsTable {
  id: string;
  run_id: string;
  step: string;
  attempt: number;
  status: string;
  owner: string;
  error: string | null;
  started_at: string;
  finished_at: string | null;
}

/** An output of a step, stored in the ObjectStore under `object_key`. */
export interface PipelineArtifactsTable {
  id: string;
  run_id: string;
  step: string;
  name: string;
  object_key: string;
  size: number;
  etag: string;
  created_at: string;
}

export interface PipelineLogsTable {
  id: string;
  run_id: string;
  step: string;
  attempt: number;
  level: string;
  message: string;
  fields_json: string | null;
  created_at: string;
}

export interface Database {
  events: EventsTable;
  answers: AnswersTable;
  pipeline_triggers: PipelineTriggersTable;
  feedback: FeedbackTable;
  feedback_votes: FeedbackVotesTable;
  pipeline_runs: PipelineRunsTable;
  pipeline_steps: PipelineStepsTable;
  pipeline_attempts: PipelineAttemptsTable;
  pipeline_artifacts: PipelineArtifactsTable;
  pipeline_logs: PipelineLogsTable;
}
