import type { TrackingClient } from './client.ts';
import type { RunLog } from './run-log.ts';

/** Runs on a remote MLflow (`tracking.uri`) through its REST API and artifact proxy. */
export function createMlflowRunLog(client: TrackingClient): RunLog {
  return {
    target: client.uri,
    async startRun({ experiment, runName, tags }) {
      const run = await client.createRun({
        experimentId: await client.getOrCreateExperiment(experiment),
        runName,
        ...(tags ? { tags } : {}),
      });
      return run.info.run_id;
    },
    async log(runId, { params, metrics, history, tags }) {
      if (params && Object.keys(params).length > 0) await client.logParams(runId, params);
      if (tags && Object.keys(tags).length > 0) await client.setTags(runId, tags);
      if (metrics && Object.keys(metrics).length > 0) await client.logMetrics(runId, metrics, { step: 0 });
      for (const [key, points] of Object.entries(history ?? {})) {
        for (const { step, value } of points) await client.logMetrics(runId, { [key]: value }, { step });
      }
      await client.flush();
    },
    async logInputs(runId, inputs) {
      await client.call('POST', 'runs/log-inputs', {
        run_id: runId,
        datasets: inputs.map((input) => ({
          tags: [{ key: 'mlflow.data.context', value: input.context }],
          dataset: { name: input.name, digest: input.digest, source_type: 'bertha', source: input.source },
        })),
      });
    },
    logArtifact: (runId, artifactPath, body) => client.logArtifact(runId, artifactPath, body),
    async endRun(runId, status = 'FINISHED') {
      await client.endRun(runId, status);
    },
  };
}
