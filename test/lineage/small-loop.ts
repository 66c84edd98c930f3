import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createLineageStore } from '../../src/lineage/index.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import { createRolloutStore } from '../../src/rollout/index.ts';
import { createModelRegistry, createRegistryStore } from '../../src/tracking/index.ts';
import { insertAnswer } from '../helpers/answers.ts';

export const DATASET = '0123456789abcdef';
export const TRACKING_RUN = 'a'.repeat(32);

/**
 * answer -> feedback -> dataset -> tracking run -> bertha-chat/1 -> rollout, through the stores
 * that write them in the loop (the edges a step records, written as the step would).
 */
export async function smallLoop(db: MetadataDb) {
  const logger = createLogger('silent');
  const answerId = await insertAnswer(db, { modelVersion: 'starter', answer: 'Bertha is a boat.' });
  const voted = await createFeedbackStore(db).record({ responseId: answerId, userId: 'u1', rating: 'down' });
  const lineage = createLineageStore(db);
  const edges = [
    {
      from: { kind: 'feedback', id: voted.feedback.id },
      to: { kind: 'dataset', id: DATASET },
      relation: 'contributed to',
      attributes: { split: 'negatives', role: 'negative', contentHash: 'f'.repeat(64) },
    },
    { from: { kind: 'dataset', id: DATASET }, to: { kind: 'tracking-run', id: TRACKING_RUN }, relation: 'trained' },
  ] as const;
  await lineage.link([...edges]);
  // A retried step writes its edges again: nothing changes.
  await lineage.link([...edges]);
  const registry = createModelRegistry({
    store: createRegistryStore(db),
    bus: createLocalEventBus({ db, logger }),
    logger,
  });
  const version = await registry.registerBundle({
    name: 'bertha-chat',
    runId: TRACKING_RUN,
    bundle: {
      base: { kind: 'gguf', path: '/models/starter.gguf' },
      adapters: [],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
      lineage: { runId: TRACKING_RUN, parentVersion: 'starter' },
    },
  });
  const rollout = await createRolloutStore(db).start({
    model: 'bertha-chat',
    championVersion: 'starter',
    challengerVersion: `bertha-chat/${version.version}`,
    share: 0.1,
    reason: 'test',
  });
  return { answerId, feedbackId: voted.feedback.id, version: `bertha-chat/${version.version}`, rolloutId: rollout.id };
}
