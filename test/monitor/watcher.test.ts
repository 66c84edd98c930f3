import { describe, expect, onTestFinished, test } from 'vitest';
import { monitorSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createFeedbackStore, createQualityWatcher, type Rating } from '../../src/monitor/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { dbFactories } from '../helpers/databases.ts';
import { waitFor } from '../helpers/processes.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`embedded quality watcher on ${factory.name}`, () => {
    async function setup(rules: Record<string, unknown>) {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const store = createFeedbackStore(db);
      const bus = createLocalEventBus({ db, logger: createLogger('silent') });
      const watcher = createQualityWatcher({
        rules: monitorSchema.parse({ rules }).rules,
        store,
        bus,
        logger: createLogger('silent'),
      });
      const answer = await insertAnswer(db, { modelVersion: 'v1' });
      const vote = async (user: string, rating: Rating) => {
        await store.record({ responseId: answer, userId: user, rating });
      };
      return { bus, watcher, vote };
    }

    test('more thumbs-down than up, held for the rule duration, fires once; thumbs-up resolves it', async () => {
      const { bus, watcher, vote } = await setup({ downOverUp: { for: '60s' }, downRatio: { enabled: false } });
      const t0 = Date.now();
      await vote('a', 'down');
      await watcher.evaluate(new Date(t0));
      await watcher.evaluate(new Date(t0 + 59_000));
      expect(await bus.list()).toHaveLength(0);
      await watcher.evaluate(new Date(t0 + 60_000));
      await watcher.evaluate(new Date(t0 + 61_000));
      const degraded = await bus.list({ type: 'model.degraded' });
      expect(degraded).toHaveLength(1);
      expect(degraded[0]).toMatchObject({
        source: 'watcher',
        subject: 'v1',
        payload: { model_version: 'v1', alertname: 'BerthaThumbsDownOverUp', status: 'firing' },
      });

      await vote('b', 'up');
      await vote('c', 'up');
      await watcher.evaluate(new Date(t0 + 62_000));
      const recovered = await bus.list({ type: 'model.recovered' });
      expect(recovered).toHaveLength(1);
      expect(recovered[0]?.payload).toMatchObject({
        status: 'resolved',
        starts_at: degraded[0]?.payload && (degraded[0].payload as { starts_at: string }).starts_at,
      });
    });

    test('a condition that clears before its duration never fires', async () => {
      const { bus, watcher, vote } = await setup({ downOverUp: { for: '60s' }, downRatio: { enabled: false } });
      const t0 = Date.now();
      await vote('a', 'down');
      await watcher.evaluate(new Date(t0));
      await vote('b', 'up');
      await watcher.evaluate(new Date(t0 + 30_000));
      await vote('c', 'down');
      await watcher.evaluate(new Date(t0 + 70_000));
      expect(await bus.list()).toHaveLength(0);
    });

    test('only while active (holding the monitor lease) does it watch', async () => {
      const { bus, watcher, vote } = await setup({ downOverUp: { for: '0s' }, downRatio: { enabled: false } });
      let active = false;
      const stop = watcher.start(20, () => active);
      onTestFinished(stop);
      await vote('a', 'down');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await bus.list()).toHaveLength(0);
      active = true;
      await waitFor(async () => ((await bus.list({ type: 'model.degraded' })).length === 1 ? true : undefined), {
        timeoutMs: 5_000,
        what: 'the alert once active',
      });
    });

    test('the ratio rule waits for its minimum volume within the window', async () => {
      const { bus, watcher, vote } = await setup({
        downOverUp: { enabled: false },
        downRatio: { window: '1h', threshold: 0.5, minVotes: 4, for: '0s' },
      });
      await vote('a', 'down');
      await vote('b', 'down');
      await vote('c', 'up');
      await watcher.evaluate();
      expect(await bus.list()).toHaveLength(0);
      await vote('d', 'down');
      await watcher.evaluate();
      expect((await bus.list({ type: 'model.degraded' }))[0]?.payload).toMatchObject({
        alertname: 'BerthaThumbsDownRatioHigh',
        model_version: 'v1',
      });
      // Two hours later the votes have left the window: the alert resolves.
      await watcher.evaluate(new Date(Date.now() + 2 * 3_600_000));
      expect(await bus.list({ type: 'model.recovered' })).toHaveLength(1);
    });
  });
}
