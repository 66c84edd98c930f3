import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import { createRolloutController, createRolloutStore, ROLLOUT_CHANGED } from '../../src/rollout/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { dbFactories } from '../helpers/databases.ts';

const policy = { minVotes: 20, minAnswers: 20, confidence: 0.95, downRateTolerance: 0.05, errorRateTolerance: 0.05 };

async function votes(db: MetadataDb, version: string, up: number, down: number): Promise<void> {
  const feedback = createFeedbackStore(db);
  for (let i = 0; i < up + down; i++) {
    const answer = await insertAnswer(db, { modelVersion: version });
    await feedback.record({ responseId: answer, userId: `u${i}`, rating: i < up ? 'up' : 'down' });
  }
}

for (const factory of dbFactories) {
  describe.skipIf(!(await factory.available()))(`the rollout controller on ${factory.name}`, () => {
    async function setup() {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const logger = createLogger('silent');
      const bus = createLocalEventBus({ db, logger });
      const store = createRolloutStore(db);
      const promoted: string[] = [];
      const controller = createRolloutController({
        store,
        bus,
        logger,
        model: 'bertha-chat',
        promote: async (version) => {
          promoted.push(version);
        },
        steps: [0.1, 0.5],
        policy,
      });
      return { db, bus, store, controller, promoted };
    }

    test('waits with too little evidence, steps up, then promotes, each decision a row and an event', async () => {
      const { db, bus, store, controller, promoted } = await setup();
      const rollout = await controller.start('bertha-chat/1', 'bertha-chat/2', 'gate promoted bertha-chat/2');
      expect(rollout).toMatchObject({ status: 'running', share: 0.1, step: 0 });
      await expect(controller.start('bertha-chat/1', 'bertha-chat/3', 'again')).rejects.toMatchObject({
        code: 'conflict',
      });

      expect((await controller.tick())?.verdict).toBe('wait');
      expect((await controller.tick())?.verdict).toBe('wait');
      await votes(db, 'bertha-chat/1', 150, 50);
      await votes(db, 'bertha-chat/2', 170, 30);
      expect((await controller.tick())?.verdict).toBe('advance');
      expect(await store.active('bertha-chat')).toMatchObject({ step: 1, share: 0.5 });
      // A new step counts only what happened since it began.
      expect((await controller.tick())?.verdict).toBe('wait');
      await votes(db, 'bertha-chat/1', 150, 50);
      await votes(db, 'bertha-chat/2', 170, 30);
      expect((await controller.tick())?.verdict).toBe('advance');
      expect(promoted).toEqual(['bertha-chat/2']);
      expect(await store.get(rollout.id)).toMatchObject({ status: 'promoted', share: 1 });

      const decisions = await store.decisions(rollout.id);
      expect(decisions.map((d) => d.kind)).toEqual(['start', 'wait', 'step', 'wait', 'promote']);
      const step = decisions[2];
      expect(step).toMatchObject({ shareBefore: 0.1, shareAfter: 0.5 });
      expect(step?.evidence).toMatchObject({
        champion: { version: 'bertha-chat/1', up: 150, down: 50 },
        challenger: { version: 'bertha-chat/2', up: 170, down: 30 },
      });
      const events = (await bus.list({ type: ROLLOUT_CHANGED })).map(
        (event) => (event.payload as { kind: string }).kind,
      );
      expect(events.sort()).toEqual(['promote', 'start', 'step']);
    });

    test('a worse challenger is rolled back by itself; a manual rollback ends a rollout too', async () => {
      const { db, store, controller, promoted } = await setup();
      const rollout = await controller.start('bertha-chat/1', 'bertha-chat/2', 'test');
      await votes(db, 'bertha-chat/1', 90, 10);
      await votes(db, 'bertha-chat/2', 40, 60);
      expect((await controller.tick())?.verdict).toBe('rollback');
      expect(await store.get(rollout.id)).toMatchObject({ status: 'rolled_back', share: 0 });
      expect(promoted).toEqual([]);
      expect(await store.active('bertha-chat')).toBeUndefined();

      const second = await controller.start('bertha-chat/1', 'bertha-chat/3', 'test');
      const ended = await controller.rollback('operator asked');
      expect(ended).toMatchObject({ id: second.id, status: 'rolled_back', reason: 'operator asked' });
    });
  });
}
