import { describe, expect, test } from 'vitest';
import { dbFactories } from '../helpers/databases.ts';
import { startTrackingServer } from './harness.ts';

const [sqlite] = dbFactories;

describe('MLflow artifact proxy over the ObjectStore', () => {
  test('uploads, lists and downloads run artifacts; a missing one is RESOURCE_DOES_NOT_EXIST', async () => {
    const { api, url } = await startTrackingServer(sqlite as (typeof dbFactories)[number]);
    const run = (await api('POST', 'runs/create', { experiment_id: '0' })).body.run;
    const root = `${url}/api/2.0/mlflow-artifacts/artifacts/0/${run.info.run_id}/artifacts`;

    // MLflow's client PUTs raw bytes, with or without a content type.
    const adapter = Buffer.from([0, 1, 2, 3, 255]);
    expect((await fetch(`${root}/model/adapter.gguf`, { method: 'PUT', body: adapter })).status).toBe(200);
    expect(
      (
        await fetch(`${root}/model/bundle.json`, {
          method: 'PUT',
          body: '{"a":1}',
          headers: { 'content-type': 'application/json' },
        })
      ).status,
    ).toBe(200);
    expect(
      (await fetch(`${root}/eval.txt`, { method: 'PUT', body: 'gold: 0.9', headers: { 'content-type': 'text/plain' } }))
        .status,
    ).toBe(200);

    const download = await fetch(`${root}/model/adapter.gguf`);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(adapter);
    expect(await (await fetch(`${root}/model/bundle.json`)).text()).toBe('{"a":1}');

    const listed = await fetch(`${url}/api/2.0/mlflow-artifacts/artifacts?path=0/${run.info.run_id}/artifacts`);
    expect(await listed.json()).toEqual({
      files: [
        { path: 'eval.txt', is_dir: false, file_size: 9 },
        { path: 'model', is_dir: true },
      ],
    });
    const runList = await api('GET', 'artifacts/list', { run_id: run.info.run_id, path: 'model' });
    expect(runList.body).toEqual({
      root_uri: run.info.artifact_uri,
      files: [
        { path: 'model/adapter.gguf', is_dir: false, file_size: 5 },
        { path: 'model/bundle.json', is_dir: false, file_size: 7 },
      ],
    });

    const missing = await fetch(`${root}/nope.bin`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error_code: 'RESOURCE_DOES_NOT_EXIST' });
    const outside = await fetch(`${url}/api/2.0/mlflow-artifacts/artifacts/0/..%2F..%2Fsecret`, {
      method: 'PUT',
      body: 'x',
    });
    expect(outside.status).toBe(400);

    expect((await fetch(`${root}/model`, { method: 'DELETE' })).status).toBe(200);
    expect((await fetch(`${root}/model/adapter.gguf`)).status).toBe(404);
  });
});
