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
  type: string;
  source: string;
  subject: string | null;
  /** Set when the producer can recognise a redelivery (alert fingerprint, S3 sequencer). */
  dedupe_key: string | null;
  payload_json: string;
  created_at: string;
  /** 0 while the NATS bus has not had the event accepted by the broker (its outbox); 1 otherwise. */
  sent: Generated<number>;
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
  /** What the context budget left out of the prompt; null on rows older than the budget. */
  trimmed_json: string | null;
  /**
   * What produced the answer (file digests of base and adapters, template digest, effective
   * generation and retrieval settings, document versions used); null on older rows.
   */
  provenance_json: string | null;
  /** `completed`, `cancelled` or `failed`. */
  status: string;
  error: string | null;
  prompt_tokens: number;
  /** Of `prompt_tokens`, those the runtime reused from its cache. */
  cached_prompt_tokens: Generated<number>;
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
 * blocked by the concurrency policy; `reason` says which), `failed`, `finished` (its run ended;
 * `reason` is `run succeeded|failed|cancelled`).
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
  created_at: string;
}

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

/** Tracking tables follow MLflow's model: times are epoch ms (int64 in MLflow's protos; PostgreSQL returns them as strings). */
export interface TrackingExperimentsTable {
  experiment_id: Generated<number>;
  name: string;
  artifact_location: string;
  /** `active` or `deleted`. */
  lifecycle_stage: string;
  creation_time: number | string;
  last_update_time: number | string;
}

export interface TrackingKeyValueTable {
  key: string;
  value: string;
}

export interface TrackingExperimentTagsTable extends TrackingKeyValueTable {
  experiment_id: number;
}

export interface TrackingRunsTable {
  /** 32 hex characters, as MLflow clients validate. */
  run_id: string;
  experiment_id: number;
  name: string;
  user_id: string;
  /** RUNNING, SCHEDULED, FINISHED, FAILED, KILLED. */
  status: string;
  start_time: number | string;
  end_time: number | string | null;
  lifecycle_stage: string;
  artifact_uri: string;
  deleted_time: number | string | null;
}

export interface TrackingMetricsTable {
  run_id: string;
  key: string;
  value: number;
  timestamp: number | string;
  step: number | string;
  /** NaN is stored as value 0 with this flag set, as MLflow's SQL store does. */
  is_nan: number;
}

export interface TrackingRunKeyValueTable extends TrackingKeyValueTable {
  run_id: string;
}

export interface TrackingRunInputsTable {
  run_id: string;
  name: string;
  digest: string;
  source_type: string;
  source: string;
  schema: string | null;
  profile: string | null;
  tags_json: string;
  created_time: number | string;
}

export interface RegisteredModelsTable {
  name: string;
  description: string | null;
  creation_timestamp: number | string;
  last_updated_timestamp: number | string;
}

export interface RegisteredModelTagsTable extends TrackingKeyValueTable {
  name: string;
}

export interface ModelVersionsTable {
  name: string;
  version: number;
  description: string | null;
  user_id: string | null;
  /** None, Staging, Production, Archived. */
  current_stage: string;
  source: string;
  run_id: string | null;
  run_link: string | null;
  /** PENDING_REGISTRATION, FAILED_REGISTRATION, READY. */
  status: string;
  status_message: string | null;
  /** The model bundle (src/models/bundle.ts) this version serves. */
  bundle_json: string | null;
  creation_timestamp: number | string;
  last_updated_timestamp: number | string;
}

export interface ModelVersionTagsTable extends TrackingKeyValueTable {
  name: string;
  version: number;
}

export interface RegisteredModelAliasesTable {
  name: string;
  alias: string;
  version: number;
  updated_at: string;
}

/**
 * A document of the knowledge base: one per object key. `version` is the SHA-256 of the content
 * last loaded; status `pending` (loading or vectorizing), `ingested`, `failed` (+ `error`).
 */
export interface DocumentsTable {
  id: string;
  key: string;
  version: string | null;
  status: string;
  error: string | null;
  size: number | null;
  content_type: string | null;
  chunk_count: number;
  /** Loader facts: page count, title, format. */
  metadata_json: string;
  created_at: string;
  updated_at: string;
  ingested_at: string | null;
}

/** A passage cut from one version of a document; the vector store holds its vector under the same id. */
export interface ChunksTable {
  id: string;
  document_id: string;
  document_version: string;
  ordinal: number;
  text: string;
  /** Page, section heading, character offsets. */
  metadata_json: string;
  created_at: string;
}

/** The last state of an object the watcher or poller saw (fs folder or S3 bucket). */
export interface ObjectSnapshotsTable {
  key: string;
  etag: string;
  size: number;
  seen_at: string;
}

/** Singleton work of a deployment and the process doing it until `expires_at` (migration 0100). */
export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: string;
}

export interface RolloutsTable {
  id: string;
  /** Registered model whose champion alias the rollout moves on promotion. */
  model: string;
  /** Registry versions as `<model>/<n>`. */
  champion_version: string;
  challenger_version: string;
  /** `running`, `promoted`, `rolled_back`. */
  status: string;
  /** Index into the configured traffic steps. */
  step: number;
  /** The challenger's share of new conversations, 0..1. */
  share: number;
  step_started_at: string;
  /** Why it ended (or was last held back). */
  reason: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

export interface RolloutDecisionsTable {
  id: string;
  rollout_id: string;
  /** `start`, `wait`, `step`, `promote`, `rollback`. */
  kind: string;
  step: number;
  share_before: number;
  share_after: number;
  reason: string;
  /** Both arms' answers, errors and votes, and the posterior probabilities decided on. */
  evidence_json: string;
  created_at: string;
}

export interface Database {
  events: EventsTable;
  answers: AnswersTable;
  pipeline_triggers: PipelineTriggersTable;
  api_keys: ApiKeysTable;
  feedback: FeedbackTable;
  feedback_votes: FeedbackVotesTable;
  pipeline_runs: PipelineRunsTable;
  pipeline_steps: PipelineStepsTable;
  pipeline_attempts: PipelineAttemptsTable;
  pipeline_artifacts: PipelineArtifactsTable;
  pipeline_logs: PipelineLogsTable;
  tracking_experiments: TrackingExperimentsTable;
  tracking_experiment_tags: TrackingExperimentTagsTable;
  tracking_runs: TrackingRunsTable;
  tracking_metrics: TrackingMetricsTable;
  tracking_latest_metrics: TrackingMetricsTable;
  tracking_params: TrackingRunKeyValueTable;
  tracking_run_tags: TrackingRunKeyValueTable;
  tracking_run_inputs: TrackingRunInputsTable;
  registered_models: RegisteredModelsTable;
  registered_model_tags: RegisteredModelTagsTable;
  model_versions: ModelVersionsTable;
  model_version_tags: ModelVersionTagsTable;
  registered_model_aliases: RegisteredModelAliasesTable;
  documents: DocumentsTable;
  chunks: ChunksTable;
  object_snapshots: ObjectSnapshotsTable;
  leases: LeasesTable;
  rollouts: RolloutsTable;
  rollout_decisions: RolloutDecisionsTable;
}
