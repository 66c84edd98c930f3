import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createMonitorLease } from '../../src/monitor/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { waitFor } from '../helpers/processes.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`monitor lease on ${factory.name}`, () => {
    async function twoWorkers(ttlMs: number) {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const lease = (holder: string) => createMonitorLease({ db, ttlMs, holder, logger: createLogger('silent') });
      return { db, first: lease('worker-1'), second: lease('worker-2') };
    }

    test('one process holds it; renewing keeps it; release hands it over at once', async () => {
      const { first, second } = await twoWorkers(60_000);
      expect(await first.acquire()).toBe(true);
      expect(await second.acquire()).toBe(false);
      expect(await first.acquire()).toBe(true);
      expect([first.held(), second.held()]).toEqual([true, false]);

      const stopFirst = await first.start();
      await stopFirst();
      expect(first.held()).toBe(false);
      expect(await second.acquire()).toBe(true);
    });

    test('a holder that stops renewing (a crash) loses it to another once it lapses', async () => {
      const { db, first, second } = await twoWorkers(300);
      expect(await first.acquire()).toBe(true);
      const stopSecond = await second.start();
      onTestFinished(stopSecond);
      expect(second.held()).toBe(false);
      // `first` never renews: the row lapses and the second's renewal loop takes it.
      await waitFor(async () => (second.held() ? true : undefined), { timeoutMs: 5_000, what: 'the takeover' });
      expect(first.held()).toBe(false);
      expect(await first.acquire()).toBe(false);
      const row = await db.kysely.selectFrom('leases').selectAll().executeTakeFirst();
      expect(row).toMatchObject({ name: 'monitor', holder: 'worker-2' });
    });
  });
}
