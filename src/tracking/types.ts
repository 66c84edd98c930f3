/**
 * Tracking entities as MLflow's REST API renders them (mlflow/protos/service.proto):
 * snake_case fields, ids as strings, int64 times as epoch-millisecond numbers.
 */
export interface KeyValue {
  key: string;
  value: string;
}

export interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location: string;
  lifecycle_stage: 'active' | 'deleted';
  last_update_time: number;
  creation_time: number;
  tags: KeyValue[];
}

export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';
export const RUN_STATUSES: readonly RunStatus[] = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];

export interface RunInfo {
  run_id: string;
  /** Deprecated twin of run_id that MLflow still sends. */
  run_uuid: string;
  run_name: string;
  experiment_id: string;
  user_id: string;
  status: RunStatus;
  start_time: number;
  end_time?: number;
  artifact_uri: string;
  lifecycle_stage: 'active' | 'deleted';
}

/** NaN and the infinities travel as the strings protobuf's JSON mapping uses. */
export type MetricValue = number | 'NaN' | 'Infinity' | '-Infinity';

export interface Metric {
  key: string;
  value: MetricValue;
  timestamp: number;
  step: number;
}

export interface Dataset {
  name: string;
  digest: string;
  source_type: string;
  source: string;
  schema?: string;
  profile?: string;
}

export interface DatasetInput {
  tags: KeyValue[];
  dataset: Dataset;
}

export interface Run {
  info: RunInfo;
  data: { metrics: Metric[]; params: KeyValue[]; tags: KeyValue[] };
  inputs: { dataset_inputs: DatasetInput[] };
}

export type ViewType = 'ACTIVE_ONLY' | 'DELETED_ONLY' | 'ALL';

export interface Page<T> {
  items: T[];
  nextPageToken?: string;
}

/** A metric as a logger gives it: value may be any double, timestamp defaults to now. */
export interface MetricInput {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}

export interface LogBatchInput {
  metrics?: MetricInput[];
  params?: KeyValue[];
  tags?: KeyValue[];
}

export interface SearchRunsInput {
  experimentIds: string[];
  filter?: string | undefined;
  runViewType?: ViewType | undefined;
  maxResults?: number | undefined;
  orderBy?: string[] | undefined;
  pageToken?: string | undefined;
}

export interface SearchExperimentsInput {
  filter?: string | undefined;
  viewType?: ViewType | undefined;
  maxResults?: number | undefined;
  orderBy?: string[] | undefined;
  pageToken?: string | undefined;
}
