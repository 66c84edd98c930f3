import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import type { BerthaEvent } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { dbFactories } from '../helpers/databases.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`local event bus on ${factory.name}`, () => {
    async function bus() {
      const db = await factory.create();
      onTestFinished(() => db.close());
      return createLocalEventBus({ db, logger: createLogger('silent') });
    }

    test('an event is stored before subscribers run, and is listed newest first', async () => {
      const events = await bus();
      const seen: BerthaEvent[] = [];
      events.subscribe('object.created', async (event) => {
        expect(await events.get(event.id)).toEqual(event);
        seen.push(event);
      });
      await events.publish({ type: 'object.created', source: 'test', subject: 'a.md', payload: { key: 'a.md' } });
      await events.publish({ type: 'object.created', source: 'test', subject: 'b.md', payload: { key: 'b.md' } });
      await events.drain();
      expect(seen.map((event) => event.subject)).toEqual(['a.md', 'b.md']);
      const listed = await events.list({ type: 'object.created' });
      expect(listed.map((event) => event.subject)).toEqual(['b.md', 'a.md']);
      expect(await events.list({ subject: 'a.md' })).toHaveLength(1);
    });

    test('a redelivery with the same dedupe key is stored once and dispatched once', async () => {
      const events = await bus();
      let calls = 0;
      events.subscribe('*', () => {
        calls++;
      });
      const results = await Promise.all(
        Array.from({ length: 5 }, () =>
          events.publish({ type: 'model.degraded', source: 'test', dedupeKey: 'group:fp', payload: {} }),
        ),
      );
      await events.drain();
      expect(results.filter((result) => !result.duplicate)).toHaveLength(1);
      expect(new Set(results.map((result) => result.event.id)).size).toBe(1);
      expect(calls).toBe(1);
      expect(await events.list()).toHaveLength(1);
    });

    test('a failing subscriber is recorded in the log and does not affect others', async () => {
      const events = await bus();
      let delivered = false;
      events.subscribe('x', () => {
        throw new Error('boom');
      });
      events.subscribe('x', () => {
        delivered = true;
      });
      const { duplicate } = await events.publish({ type: 'x', source: 'test', payload: null });
      await events.drain();
      expect(duplicate).toBe(false);
      expect(delivered).toBe(true);
    });
  });
}
