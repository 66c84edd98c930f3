import type { ObjectStore } from '../objects/index.ts';
import type { RunLog } from './run-log.ts';
import { experimentIdFor, type TrackingStore } from './store.ts';
import { LIMITS } from './validation.ts';

/** Runs in Bertha's own tracking store; artifacts in the object store, where its artifact proxy serves them. */
export function createEmbeddedRunLog(tracking: TrackingStore, objects: ObjectStore): RunLog {
  return {
    target: 'embedded',
    async startRun({ experiment, runName, tags = {} }) {
      const run = await tracking.createRun({
        experimentId: await experimentIdFor(tracking, experiment),
        runName,
        tags: Object.entries(tags).map(([key, value]) => ({ key, value })),
      });
      return run.info.run_id;
    },
    async log(runId, { params = {}, metrics = {}, history = {}, tags = {} }) {
      const now = Date.now();
      await tracking.logBatch(runId, {
        params: Object.entries(params).map(([key, value]) => ({ key, value: String(value) })),
        metrics: Object.entries(metrics).map(([key, value]) => ({ key, value, timestamp: now, step: 0 })),
        tags: Object.entries(tags).map(([key, value]) => ({ key, value })),
      });
      const points = Object.entries(history).flatMap(([key, series]) =>
        series.map(({ step, value }) => ({ key, value, timestamp: now, step })),
      );
      for (let i = 0; i < points.length; i += LIMITS.metricsPerBatch) {
        await tracking.logBatch(runId, { metrics: points.slice(i, i + LIMITS.metricsPerBatch) });
      }
    },
    async logInputs(runId, inputs) {
      await tracking.logInputs(
        runId,
        inputs.map((input) => ({
          tags: [{ key: 'mlflow.data.context', value: input.context }],
          dataset: { name: input.name, digest: input.digest, source_type: 'bertha', source: input.source },
        })),
      );
    },
    async logArtifact(runId, artifactPath, body) {
      // The run's artifact root is `mlflow-artifacts:/<experiment>/<run>/artifacts`, served by
      // the artifact proxy from the ObjectStore under the same path.
      const run = await tracking.getRun(runId);
      const root = run.info.artifact_uri.replace(/^mlflow-artifacts:\/+/, 'mlflow-artifacts/');
      await objects.put(`${root}/${artifactPath}`, body);
    },
    async endRun(runId, status = 'FINISHED') {
      await tracking.updateRun({ runId, status, endTime: Date.now() });
    },
  };
}
