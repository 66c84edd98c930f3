/** A dataset an MLflow run used (`runs/log-inputs`). */
export interface RunInput {
  name: string;
  digest: string;
  source: string;
  /** `mlflow.data.context`: `training`, `evaluation` ... */
  context: string;
}

export interface RunValues {
  params?: Record<string, string | number>;
  metrics?: Record<string, number>;
  /** Metrics with a value per step (a loss curve); the latest step is the metric's value. */
  history?: Record<string, readonly { step: number; value: number }[]>;
  tags?: Record<string, string>;
}

/**
 * Where pipeline steps record their runs: the tracking server `tracking.uri` names (a remote
 * MLflow), else Bertha's embedded one. Steps never reach a tracking store by another path, so
 * a user who points Bertha at MLflow finds every run there.
 */
export interface RunLog {
  /** Where runs go, for messages: the remote URI or `embedded`. */
  readonly target: string;
  startRun(input: { experiment: string; runName: string; tags?: Record<string, string> }): Promise<string>;
  log(runId: string, values: RunValues): Promise<void>;
  logInputs(runId: string, inputs: RunInput[]): Promise<void>;
  /** Stored under the run's artifact root, as MLflow's artifact proxy serves it. */
  logArtifact(runId: string, artifactPath: string, body: Buffer): Promise<void>;
  endRun(runId: string, status?: 'FINISHED' | 'FAILED'): Promise<void>;
}
