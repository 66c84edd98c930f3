import { describe, expect, test } from 'vitest';
import { dbFactories } from '../helpers/databases.ts';
import { startTrackingServer, type TrackingServer } from './harness.ts';

interface SeededRun {
  id: string;
  name: string;
}

/** Six runs: acc 0.1..0.6, lr alternating, team tags, the last two finished. */
async function seed(api: TrackingServer['api']): Promise<{ experimentId: string; runs: SeededRun[] }> {
  const experimentId = (await api('POST', 'experiments/create', { name: 'search' })).body.experiment_id as string;
  const runs: SeededRun[] = [];
  for (let i = 0; i < 6; i++) {
    const name = `run-${i}`;
    const run = (
      await api('POST', 'runs/create', { experiment_id: experimentId, run_name: name, start_time: 1000 + i })
    ).body.run;
    await api('POST', 'runs/log-batch', {
      run_id: run.info.run_id,
      metrics: i === 5 ? [] : [{ key: 'acc', value: (i + 1) / 10, timestamp: 1, step: 0 }],
      params: [{ key: 'lr', value: i % 2 ? '0.1' : '0.01' }],
      tags: [{ key: 'team', value: i < 3 ? 'alpha' : 'Beta' }],
    });
    if (i >= 4) await api('POST', 'runs/update', { run_id: run.info.run_id, status: 'FINISHED', end_time: 2000 + i });
    runs.push({ id: run.info.run_id, name });
  }
  return { experimentId, runs };
}

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`MLflow run search on ${factory.name}`, () => {
    test('filters on metrics, params, tags and attributes combine with AND', async () => {
      const { api } = await startTrackingServer(factory);
      const { experimentId, runs } = await seed(api);
      const names = async (filter: string, extra: Record<string, unknown> = {}) => {
        const answer = await api('POST', 'runs/search', { experiment_ids: [experimentId], filter, ...extra });
        expect(answer.status, `${filter}: ${JSON.stringify(answer.body)}`).toBe(200);
        return (answer.body.runs ?? []).map((run: { info: { run_name: string } }) => run.info.run_name).sort();
      };
      expect(await names('metrics.acc > 0.3')).toEqual(['run-3', 'run-4']);
      expect(await names('metrics.acc >= 0.3 and params.lr = "0.01"')).toEqual(['run-2', 'run-4']);
      expect(await names("params.lr != '0.1' AND tags.team = 'alpha'")).toEqual(['run-0', 'run-2']);
      expect(await names("tags.team LIKE 'B%'")).toEqual(['run-3', 'run-4', 'run-5']);
      expect(await names("tags.team LIKE 'b%'")).toEqual([]);
      expect(await names("tags.team ILIKE 'b%'")).toEqual(['run-3', 'run-4', 'run-5']);
      expect(await names("attributes.status = 'FINISHED'")).toEqual(['run-4', 'run-5']);
      expect(await names("attribute.run_name = 'run-1'")).toEqual(['run-1']);
      expect(await names(`attributes.run_id IN ('${runs[0]?.id}', '${runs[5]?.id}')`)).toEqual(['run-0', 'run-5']);
      expect(await names('attributes.start_time >= 1004')).toEqual(['run-4', 'run-5']);
      expect(await names('metrics.`acc` < 0.2')).toEqual(['run-0']);
      expect(await names('')).toHaveLength(6);
    });

    test('order_by sorts by metric, param or attribute, runs missing the key last, and pages with tokens', async () => {
      const { api } = await startTrackingServer(factory);
      const { experimentId } = await seed(api);
      const order = async (orderBy: string[]) =>
        (await api('POST', 'runs/search', { experiment_ids: [experimentId], order_by: orderBy })).body.runs.map(
          (run: { info: { run_name: string } }) => run.info.run_name,
        );
      expect(await order(['metrics.acc DESC'])).toEqual(['run-4', 'run-3', 'run-2', 'run-1', 'run-0', 'run-5']);
      expect(await order(['metrics.acc ASC'])).toEqual(['run-0', 'run-1', 'run-2', 'run-3', 'run-4', 'run-5']);
      expect(await order([])).toEqual(['run-5', 'run-4', 'run-3', 'run-2', 'run-1', 'run-0']);
      expect(await order(['params.lr ASC', 'attributes.start_time ASC'])).toEqual([
        'run-0',
        'run-2',
        'run-4',
        'run-1',
        'run-3',
        'run-5',
      ]);

      const seen: string[] = [];
      let token: string | undefined;
      do {
        const page = await api('POST', 'runs/search', {
          experiment_ids: [experimentId],
          order_by: ['metrics.acc DESC'],
          max_results: 4,
          ...(token ? { page_token: token } : {}),
        });
        seen.push(...page.body.runs.map((run: { info: { run_name: string } }) => run.info.run_name));
        token = page.body.next_page_token;
      } while (token);
      expect(seen).toEqual(['run-4', 'run-3', 'run-2', 'run-1', 'run-0', 'run-5']);
    });

    test('deleted runs are found only with DELETED_ONLY or ALL', async () => {
      const { api } = await startTrackingServer(factory);
      const { experimentId, runs } = await seed(api);
      await api('POST', 'runs/delete', { run_id: runs[0]?.id });
      const count = async (view: string) =>
        (await api('POST', 'runs/search', { experiment_ids: [experimentId], run_view_type: view })).body.runs.length;
      expect(await count('ACTIVE_ONLY')).toBe(5);
      expect(await count('DELETED_ONLY')).toBe(1);
      expect(await count('ALL')).toBe(6);
    });

    test('invalid filters, order_by clauses and page tokens answer INVALID_PARAMETER_VALUE', async () => {
      const { api } = await startTrackingServer(factory);
      const { experimentId } = await seed(api);
      for (const filter of [
        'metrics.acc > ',
        "metrics.acc > 'high'",
        "params.lr > '0.1' OR tags.team = 'alpha'",
        "bogus.x = 'y'",
        "attributes.colour = 'red'",
        "tags.team = 'alpha",
        'params.lr LIKE 0.1',
        "attributes.status IN ('FINISHED')",
        '`unterminated',
      ]) {
        const answer = await api('POST', 'runs/search', { experiment_ids: [experimentId], filter });
        expect(answer, filter).toMatchObject({ status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE' } });
      }
      expect(
        await api('POST', 'runs/search', { experiment_ids: [experimentId], order_by: ['metrics.acc SIDEWAYS'] }),
      ).toMatchObject({
        status: 400,
      });
      expect(
        await api('POST', 'runs/search', { experiment_ids: [experimentId], page_token: 'not-a-token' }),
      ).toMatchObject({
        status: 400,
        body: { error_code: 'INVALID_PARAMETER_VALUE' },
      });
      expect(await api('POST', 'runs/search', { experiment_ids: [experimentId], max_results: 50_001 })).toMatchObject({
        status: 400,
      });
    });
  });
}
