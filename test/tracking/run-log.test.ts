import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { openRunLog } from '../../src/adapters.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { createTrackingClient, createTrackingStore } from '../../src/tracking/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { startTrackingServer } from './harness.ts';

const [sqlite] = dbFactories as [(typeof dbFactories)[number]];

/** Local stores that must stay empty when `tracking.uri` names a remote server. */
async function localStores() {
  const db = await sqlite.create();
  onTestFinished(() => db.close());
  return { tracking: createTrackingStore(db), objects: createFsObjectStore({ root: path.join(tempDir(), 'objects') }) };
}

describe('the run log pipeline steps record through', () => {
  test('with tracking.uri set, runs, params, metrics, inputs and artifacts go to that MLflow server, none to the embedded one', async () => {
    const remote = await startTrackingServer(sqlite);
    const local = await localStores();
    const { config } = loadConfig({}, { BERTHA_TRACKING_URI: remote.url });
    const runs = openRunLog(config, local.tracking, local.objects, createLogger('silent'));
    expect(runs.target).toBe(remote.url);

    const runId = await runs.startRun({
      experiment: 'llm-retraining',
      runName: 'retrain-x',
      tags: { 'bertha.step': 'x' },
    });
    await runs.log(runId, { params: { dataset_version: 'abc', steps: 4 }, metrics: { final_loss: 1.5 } });
    await runs.logInputs(runId, [
      { name: 'bertha-feedback-knowledge', digest: 'abc', source: 'datasets/abc', context: 'training' },
    ]);
    await runs.logArtifact(runId, 'adapter.gguf', Buffer.from('GGUF'));
    await runs.endRun(runId);

    const client = createTrackingClient({ uri: remote.url });
    const run = await client.getRun(runId);
    expect(run.info.status).toBe('FINISHED');
    expect(run.data.params).toEqual(
      expect.arrayContaining([
        { key: 'dataset_version', value: 'abc' },
        { key: 'steps', value: '4' },
      ]),
    );
    expect(run.data.metrics).toEqual([expect.objectContaining({ key: 'final_loss', value: 1.5 })]);
    expect(run.data.tags).toEqual(expect.arrayContaining([{ key: 'bertha.step', value: 'x' }]));
    expect(run.inputs?.dataset_inputs?.[0]?.dataset).toMatchObject({
      name: 'bertha-feedback-knowledge',
      digest: 'abc',
    });
    expect((await client.downloadArtifact(runId, 'adapter.gguf')).toString()).toBe('GGUF');

    const embedded = await local.tracking.searchExperiments({ maxResults: 100 });
    expect(embedded.items.map((experiment) => experiment.name)).not.toContain('llm-retraining');
  });

  test('without tracking.uri, the same calls land in the embedded tracker and its artifact store', async () => {
    const local = await localStores();
    const { config } = loadConfig({}, {});
    const runs = openRunLog(config, local.tracking, local.objects, createLogger('silent'));
    expect(runs.target).toBe('embedded');
    const runId = await runs.startRun({ experiment: 'llm-retraining', runName: 'retrain-y' });
    await runs.log(runId, { metrics: { final_loss: 0.5 } });
    await runs.logArtifact(runId, 'adapter.gguf', Buffer.from('GGUF'));
    await runs.endRun(runId);
    const run = await local.tracking.getRun(runId);
    expect(run.info.status).toBe('FINISHED');
    expect(run.data.metrics).toEqual([expect.objectContaining({ key: 'final_loss', value: 0.5 })]);
    const root = run.info.artifact_uri.replace(/^mlflow-artifacts:\/+/, 'mlflow-artifacts/');
    expect((await readObject(local.objects, `${root}/adapter.gguf`)).toString()).toBe('GGUF');
  });
});
