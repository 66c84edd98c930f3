import { describe, expect, onTestFinished, test } from 'vitest';
import { DEFAULT_SENSORS, sensorSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createSensors, type SensorRule } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createRunStore } from '../../src/pipelines/index.ts';
import { dbFactories } from '../helpers/databases.ts';

const defaults: SensorRule[] = DEFAULT_SENSORS.map((sensor) => sensorSchema.parse(sensor));

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`sensors on ${factory.name}`, () => {
    async function setup(rules: SensorRule[] = defaults) {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const bus = createLocalEventBus({ db, logger: createLogger('silent') });
      const sensors = createSensors({
        triggers: createRunStore(db).triggers,
        bus,
        rules,
        logger: createLogger('silent'),
      });
      onTestFinished(sensors.start());
      const triggers = () => db.kysely.selectFrom('pipeline_triggers').selectAll().orderBy('id').execute();
      return { db, bus, sensors, triggers };
    }

    test('model.degraded records a pending llm-retraining trigger with the model version', async () => {
      const { bus, triggers } = await setup();
      const { event } = await bus.publish({
        type: 'model.degraded',
        source: 'test',
        subject: 'v3',
        payload: { model_version: 'v3', alertname: 'BerthaThumbsDownOverUp' },
      });
      await bus.drain();
      const rows = await triggers();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        sensor: 'retrain-on-degradation',
        pipeline: 'llm-retraining',
        status: 'pending',
        event_id: event.id,
        concurrency_key: 'llm-retraining:v3',
        run_id: null,
      });
      expect(JSON.parse(rows[0]?.params_json ?? '')).toEqual({ model_version: 'v3' });
    });

    test('object events trigger vector ingestion with the object key', async () => {
      const { bus, triggers } = await setup();
      await bus.publish({
        type: 'object.created',
        source: 'test',
        subject: 'docs/a.md',
        payload: { key: 'docs/a.md' },
      });
      await bus.publish({
        type: 'object.removed',
        source: 'test',
        subject: 'docs/b.md',
        payload: { key: 'docs/b.md' },
      });
      await bus.drain();
      const rows = await triggers();
      expect(rows.map((row) => [row.pipeline, row.status, JSON.parse(row.params_json)])).toEqual([
        ['vector-ingestion', 'pending', { key: 'docs/a.md', change: 'created' }],
        ['vector-ingestion', 'pending', { key: 'docs/b.md', change: 'removed' }],
      ]);
    });

    test('no second trigger while one is pending, or launched with its run unfinished, for the same model version', async () => {
      const rules = defaults.map((rule) => ({ ...rule, debounceMs: 0 }));
      const { db, bus, triggers } = await setup(rules);
      const degrade = (version: string) =>
        bus.publish({ type: 'model.degraded', source: 'test', subject: version, payload: { model_version: version } });
      await Promise.all([degrade('v1'), degrade('v1'), degrade('v1'), degrade('v2')]);
      await bus.drain();
      let rows = await triggers();
      expect(rows.filter((row) => row.status === 'pending').map((row) => row.concurrency_key)).toEqual([
        'llm-retraining:v1',
        'llm-retraining:v2',
      ]);
      const skipped = rows.filter((row) => row.status === 'skipped');
      expect(skipped).toHaveLength(2);
      for (const row of skipped)
        expect(row.reason).toMatch(/^concurrency: trigger trg_\w+ for llm-retraining:v1 is pending$/);

      // The runner claims it and starts the run: still running, still blocking.
      const first = rows.find((row) => row.status === 'pending' && row.concurrency_key === 'llm-retraining:v1');
      const now = new Date().toISOString();
      await db.kysely
        .updateTable('pipeline_triggers')
        .set({ status: 'launched', run_id: 'run_1' })
        .where('id', '=', first?.id as string)
        .execute();
      await db.kysely
        .insertInto('pipeline_runs')
        .values({
          id: 'run_1',
          pipeline: 'llm-retraining',
          status: 'running',
          executor: 'local',
          params_json: '{"model_version":"v1"}',
          source: 'trigger',
          trigger_id: first?.id as string,
          concurrency_key: 'llm-retraining:v1',
          owner: null,
          lease_until: null,
          cancel_requested: 0,
          error: null,
          created_at: now,
          started_at: now,
          finished_at: null,
          updated_at: now,
        })
        .execute();
      await degrade('v1');
      await bus.drain();
      expect((await triggers()).at(-1)).toMatchObject({
        status: 'skipped',
        reason: expect.stringContaining('launched'),
      });

      // The run finished: the next degradation triggers again.
      await db.kysely
        .updateTable('pipeline_runs')
        .set({ status: 'succeeded', finished_at: new Date().toISOString() })
        .where('id', '=', 'run_1')
        .execute();
      await degrade('v1');
      await bus.drain();
      rows = await triggers();
      expect(rows.at(-1)).toMatchObject({ status: 'pending', concurrency_key: 'llm-retraining:v1' });
    });

    test('a second event within the debounce window is recorded as skipped', async () => {
      const rules = [{ ...(defaults[1] as SensorRule), debounceMs: 60_000 }];
      const { db, bus, triggers } = await setup(rules);
      const created = () =>
        bus.publish({ type: 'object.created', source: 'test', subject: 'a.md', payload: { key: 'a.md' } });
      await created();
      await bus.drain();
      const [first] = await triggers();
      await db.kysely
        .updateTable('pipeline_triggers')
        .set({ status: 'launched', run_id: 'run_9' })
        .where('id', '=', first?.id as string)
        .execute();
      await created();
      await bus.drain();
      const rows = await triggers();
      expect(rows.map((row) => row.status)).toEqual(['launched', 'skipped']);
      expect(rows[1]?.reason).toMatch(/^debounced: trigger trg_\w+ was recorded less than 60000 ms ago$/);
    });

    test('a redelivered event records no second trigger', async () => {
      const { bus, sensors, triggers } = await setup();
      const { event } = await bus.publish({
        type: 'object.created',
        source: 'test',
        subject: 'a.md',
        payload: { key: 'a.md' },
      });
      await bus.drain();
      expect(await sensors.handle(event)).toEqual([]);
      const rows = await triggers();
      expect(rows.map((row) => [row.event_id, row.status])).toEqual([[event.id, 'pending']]);
    });

    test('an event missing a templated field records a failed trigger with the reason', async () => {
      const { bus, triggers } = await setup();
      await bus.publish({ type: 'model.degraded', source: 'test', payload: { alertname: 'X' } });
      await bus.drain();
      const [row] = await triggers();
      expect(row).toMatchObject({ status: 'failed', pipeline: 'llm-retraining' });
      expect(row?.reason).toContain('{{payload.model_version}}');
    });
  });
}
