import { describe, expect, test } from 'vitest';
import { dbFactories } from '../helpers/databases.ts';
import { startTrackingServer } from './harness.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`MLflow tracking API on ${factory.name}`, () => {
    test('experiments are created, found by id and name, renamed, tagged, deleted and restored', async () => {
      const { api, url } = await startTrackingServer(factory);
      const created = await api('POST', 'experiments/create', {
        name: 'retraining',
        tags: [{ key: 'team', value: 'llm' }],
      });
      expect(created.status).toBe(200);
      const id = created.body.experiment_id as string;
      expect(id).toMatch(/^\d+$/);

      const got = await api('GET', 'experiments/get', { experiment_id: id });
      expect(got.body.experiment).toMatchObject({
        experiment_id: id,
        name: 'retraining',
        lifecycle_stage: 'active',
        artifact_location: `mlflow-artifacts:/${id}`,
        tags: [{ key: 'team', value: 'llm' }],
      });
      expect(typeof got.body.experiment.creation_time).toBe('number');
      expect(
        (await api('GET', 'experiments/get-by-name', { experiment_name: 'retraining' })).body.experiment.experiment_id,
      ).toBe(id);

      const duplicate = await api('POST', 'experiments/create', { name: 'retraining' });
      expect(duplicate).toMatchObject({ status: 400, body: { error_code: 'RESOURCE_ALREADY_EXISTS' } });

      expect((await api('POST', 'experiments/update', { experiment_id: id, new_name: 'retraining-v2' })).status).toBe(
        200,
      );
      expect(
        (await api('POST', 'experiments/set-experiment-tag', { experiment_id: id, key: 'stage', value: 'dev' })).status,
      ).toBe(200);
      expect((await api('POST', 'experiments/delete-experiment-tag', { experiment_id: id, key: 'team' })).status).toBe(
        200,
      );
      const renamed = await api('GET', 'experiments/get-by-name', { experiment_name: 'retraining-v2' });
      expect(renamed.body.experiment.tags).toEqual([{ key: 'stage', value: 'dev' }]);

      expect((await api('POST', 'experiments/delete', { experiment_id: id })).status).toBe(200);
      const active = await api('POST', 'experiments/search', { view_type: 'ACTIVE_ONLY' });
      expect(active.body.experiments.map((e: { name: string }) => e.name)).toEqual(['Default']);
      const deleted = await api('GET', 'experiments/search', { view_type: 'DELETED_ONLY' });
      expect(deleted.body.experiments.map((e: { name: string }) => e.name)).toEqual(['retraining-v2']);
      expect((await api('POST', 'experiments/restore', { experiment_id: id })).status).toBe(200);
      expect((await api('GET', 'experiments/get', { experiment_id: id })).body.experiment.lifecycle_stage).toBe(
        'active',
      );

      // The UI's prefix serves the same API.
      const ajax = await fetch(`${url}/ajax-api/2.0/mlflow/experiments/get?experiment_id=${id}`);
      expect(((await ajax.json()) as { experiment: { name: string } }).experiment.name).toBe('retraining-v2');
    });

    test('experiment search filters, orders and pages with tokens', async () => {
      const { api } = await startTrackingServer(factory);
      for (const name of ['alpha', 'beta', 'gamma', 'alpine'])
        await api('POST', 'experiments/create', { name, tags: [{ key: 'kind', value: name[0] as string }] });
      const like = await api('POST', 'experiments/search', { filter: "name LIKE 'al%'", order_by: ['name ASC'] });
      expect(like.body.experiments.map((e: { name: string }) => e.name)).toEqual(['alpha', 'alpine']);
      const byTag = await api('POST', 'experiments/search', { filter: "tags.kind = 'g'" });
      expect(byTag.body.experiments.map((e: { name: string }) => e.name)).toEqual(['gamma']);

      const names: string[] = [];
      let token: string | undefined;
      do {
        const page = await api('POST', 'experiments/search', {
          max_results: 2,
          order_by: ['name DESC'],
          ...(token ? { page_token: token } : {}),
        });
        names.push(...page.body.experiments.map((e: { name: string }) => e.name));
        token = page.body.next_page_token;
      } while (token);
      expect(names).toEqual(['gamma', 'beta', 'alpine', 'alpha', 'Default']);
    });

    test('unknown ids and names answer RESOURCE_DOES_NOT_EXIST with 404, bad ids INVALID_PARAMETER_VALUE', async () => {
      const { api } = await startTrackingServer(factory);
      expect(await api('GET', 'experiments/get', { experiment_id: '999' })).toMatchObject({
        status: 404,
        body: { error_code: 'RESOURCE_DOES_NOT_EXIST' },
      });
      expect(await api('GET', 'experiments/get-by-name', { experiment_name: 'nope' })).toMatchObject({ status: 404 });
      expect(await api('GET', 'runs/get', { run_id: '0123456789abcdef0123456789abcdef' })).toMatchObject({
        status: 404,
        body: { error_code: 'RESOURCE_DOES_NOT_EXIST' },
      });
      expect(
        await api('POST', 'runs/log-metric', {
          run_id: 'ffffffffffffffffffffffffffffffff',
          key: 'a',
          value: 1,
          timestamp: 1,
        }),
      ).toMatchObject({
        status: 404,
      });
      expect(await api('GET', 'experiments/get', { experiment_id: 'abc' })).toMatchObject({
        status: 400,
        body: { error_code: 'INVALID_PARAMETER_VALUE' },
      });
      expect(await api('GET', 'experiments/get', {})).toMatchObject({
        status: 400,
        body: { error_code: 'INVALID_PARAMETER_VALUE' },
      });
      expect(await api('POST', 'experiments/nope', {})).toMatchObject({
        status: 404,
        body: { error_code: 'ENDPOINT_NOT_FOUND' },
      });
    });

    test('a run records metrics, params, tags and inputs, and reports the latest value of each metric', async () => {
      const { api } = await startTrackingServer(factory);
      const { experiment_id } = (await api('POST', 'experiments/create', { name: 'e' })).body;
      const created = await api('POST', 'runs/create', {
        experiment_id,
        run_name: 'finetune-1',
        start_time: 1_700_000_000_000,
        user_id: 'pipeline',
        tags: [{ key: 'mlflow.source.type', value: 'JOB' }],
      });
      expect(created.status).toBe(200);
      const runId = created.body.run.info.run_id as string;
      expect(runId).toMatch(/^[0-9a-f]{32}$/);
      expect(created.body.run.info).toMatchObject({
        run_uuid: runId,
        run_name: 'finetune-1',
        experiment_id,
        status: 'RUNNING',
        lifecycle_stage: 'active',
        start_time: 1_700_000_000_000,
        artifact_uri: `mlflow-artifacts:/${experiment_id}/${runId}/artifacts`,
      });

      await api('POST', 'runs/log-metric', { run_id: runId, key: 'loss', value: 2.5, timestamp: 10, step: 0 });
      await api('POST', 'runs/log-metric', { run_id: runId, key: 'loss', value: 1.5, timestamp: 20, step: 1 });
      await api('POST', 'runs/log-metric', { run_id: runId, key: 'loss', value: 9, timestamp: 30, step: 0 });
      await api('POST', 'runs/log-metric', { run_id: runId, key: 'nan_metric', value: 'NaN', timestamp: 5 });
      expect((await api('POST', 'runs/log-parameter', { run_id: runId, key: 'lr', value: '0.001' })).status).toBe(200);
      expect((await api('POST', 'runs/log-parameter', { run_id: runId, key: 'lr', value: '0.001' })).status).toBe(200);
      const changed = await api('POST', 'runs/log-parameter', { run_id: runId, key: 'lr', value: '0.1' });
      expect(changed).toMatchObject({ status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE' } });
      await api('POST', 'runs/set-tag', { run_id: runId, key: 'gate', value: 'pending' });
      await api('POST', 'runs/set-tag', { run_id: runId, key: 'gate', value: 'passed' });
      await api('POST', 'runs/set-tag', { run_id: runId, key: 'temp', value: 'x' });
      expect((await api('POST', 'runs/delete-tag', { run_id: runId, key: 'temp' })).status).toBe(200);
      expect(await api('POST', 'runs/delete-tag', { run_id: runId, key: 'temp' })).toMatchObject({ status: 404 });
      await api('POST', 'runs/log-inputs', {
        run_id: runId,
        datasets: [
          {
            tags: [{ key: 'mlflow.data.context', value: 'training' }],
            dataset: {
              name: 'feedback',
              digest: 'abc123',
              source_type: 'local',
              source: '{"key":"datasets/feedback.jsonl"}',
            },
          },
        ],
      });

      const { run } = (await api('GET', 'runs/get', { run_id: runId })).body;
      const metrics = Object.fromEntries(run.data.metrics.map((m: { key: string }) => [m.key, m]));
      expect(metrics.loss).toEqual({ key: 'loss', value: 1.5, timestamp: 20, step: 1 });
      expect(metrics.nan_metric.value).toBe('NaN');
      expect(run.data.params).toEqual([{ key: 'lr', value: '0.001' }]);
      const tags = Object.fromEntries(run.data.tags.map((t: { key: string; value: string }) => [t.key, t.value]));
      expect(tags).toMatchObject({ gate: 'passed', 'mlflow.runName': 'finetune-1', 'mlflow.source.type': 'JOB' });
      expect(tags.temp).toBeUndefined();
      expect(run.inputs.dataset_inputs).toEqual([
        {
          tags: [{ key: 'mlflow.data.context', value: 'training' }],
          dataset: {
            name: 'feedback',
            digest: 'abc123',
            source_type: 'local',
            source: '{"key":"datasets/feedback.jsonl"}',
          },
        },
      ]);

      const history = await api('GET', 'metrics/get-history', { run_id: runId, metric_key: 'loss' });
      expect(history.body.metrics.map((m: { value: number }) => m.value)).toEqual([2.5, 9, 1.5]);
      const page = await api('GET', 'metrics/get-history', { run_id: runId, metric_key: 'loss', max_results: 2 });
      expect(page.body.metrics).toHaveLength(2);
      const rest = await api('GET', 'metrics/get-history', {
        run_id: runId,
        metric_key: 'loss',
        page_token: page.body.next_page_token,
      });
      expect(rest.body.metrics.map((m: { value: number }) => m.value)).toEqual([1.5]);

      const updated = await api('POST', 'runs/update', {
        run_id: runId,
        status: 'FINISHED',
        end_time: 1_700_000_100_000,
        run_name: 'finetune-1b',
      });
      expect(updated.body.run_info).toMatchObject({
        status: 'FINISHED',
        end_time: 1_700_000_100_000,
        run_name: 'finetune-1b',
      });
      expect(await api('POST', 'runs/update', { run_id: runId, status: 'DONE' })).toMatchObject({ status: 400 });

      expect((await api('POST', 'runs/delete', { run_id: runId })).status).toBe(200);
      expect((await api('GET', 'runs/get', { run_id: runId })).body.run.info.lifecycle_stage).toBe('deleted');
      expect(await api('POST', 'runs/log-metric', { run_id: runId, key: 'x', value: 1, timestamp: 1 })).toMatchObject({
        status: 400,
        body: { error_code: 'INVALID_PARAMETER_VALUE' },
      });
      expect((await api('POST', 'runs/restore', { run_id: runId })).status).toBe(200);
      expect((await api('GET', 'runs/get', { run_id: runId })).body.run.info.lifecycle_stage).toBe('active');
    });

    test('log-batch past MLflow limits and with bad entries is rejected with INVALID_PARAMETER_VALUE', async () => {
      const { api } = await startTrackingServer(factory);
      const runId = (await api('POST', 'runs/create', { experiment_id: '0' })).body.run.info.run_id;
      const metrics = (n: number) =>
        Array.from({ length: n }, (_, i) => ({ key: `m${i}`, value: i, timestamp: 1, step: 0 }));
      const kv = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: 'v' }));
      const cases = [
        { metrics: metrics(1001) },
        { params: kv(101) },
        { tags: kv(101) },
        { metrics: metrics(950), params: kv(40), tags: kv(40) },
        { params: [{ key: 'p', value: 'x'.repeat(6001) }] },
        { metrics: [{ key: '../escape', value: 1, timestamp: 1 }] },
        { metrics: [{ key: 'm', value: 'high', timestamp: 1 }] },
        { metrics: [{ key: 'm', value: 1 }] },
        {
          params: [
            { key: 'p', value: 'a' },
            { key: 'p', value: 'b' },
          ],
        },
      ];
      for (const batch of cases) {
        const answer = await api('POST', 'runs/log-batch', { run_id: runId, ...batch });
        expect(answer, JSON.stringify(batch).slice(0, 80)).toMatchObject({
          status: 400,
          body: { error_code: 'INVALID_PARAMETER_VALUE' },
        });
      }
      expect((await api('POST', 'runs/log-batch', { run_id: runId, metrics: metrics(1000) })).status).toBe(200);
      expect((await api('POST', 'runs/log-batch', { run_id: runId, params: kv(100), tags: kv(100) })).status).toBe(200);
      const { run } = (await api('GET', 'runs/get', { run_id: runId })).body;
      expect(run.data.metrics).toHaveLength(1000);
      expect(run.data.params).toHaveLength(100);
    });

    test('parallel log-batch calls on one run keep every value and the true latest', async () => {
      const { api } = await startTrackingServer(factory);
      const runId = (await api('POST', 'runs/create', { experiment_id: '0' })).body.run.info.run_id;
      const writers = 16;
      const perBatch = 200;
      const answers = await Promise.all(
        Array.from({ length: writers }, (_, w) =>
          api('POST', 'runs/log-batch', {
            run_id: runId,
            metrics: Array.from({ length: perBatch }, (_, i) => ({
              key: i % 2 ? 'loss' : 'acc',
              value: w * perBatch + i,
              timestamp: 1000 + i,
              step: w * perBatch + i,
            })),
            params: [{ key: 'shared', value: 'same' }],
            tags: [{ key: `writer-${w}`, value: 'done' }],
          }),
        ),
      );
      expect(answers.map((answer) => answer.status)).toEqual(Array(writers).fill(200));
      const loss = await api('GET', 'metrics/get-history', { run_id: runId, metric_key: 'loss' });
      const acc = await api('GET', 'metrics/get-history', { run_id: runId, metric_key: 'acc' });
      expect(loss.body.metrics.length + acc.body.metrics.length).toBe(writers * perBatch);
      const { run } = (await api('GET', 'runs/get', { run_id: runId })).body;
      const latest = Object.fromEntries(run.data.metrics.map((m: { key: string; step: number }) => [m.key, m.step]));
      expect(latest).toEqual({ loss: writers * perBatch - 1, acc: writers * perBatch - 2 });
      expect(run.data.tags.filter((t: { key: string }) => t.key.startsWith('writer-'))).toHaveLength(writers);
    });
  });
}
