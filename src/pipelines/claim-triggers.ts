import { newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { PipelineCatalog } from './catalog.ts';
import { type RunParams, resolveRunParams } from './definition.ts';
import type { RunStore } from './store.ts';

/** Triggers looked at in one pass; the rest wait for the next. */
const BATCH = 20;

/**
 * One pass over the `pending` triggers, oldest first. An unknown pipeline or bad parameters
 * mark the trigger `failed` with the reason; a trigger whose concurrency key has an active run
 * stays pending; the others become `launched` with a new queued run, in one transaction, so
 * of two runners claiming the same trigger exactly one creates its run.
 */
export async function claimTriggers(options: { store: RunStore; catalog: PipelineCatalog; logger: Logger }) {
  const { store, catalog, logger } = options;
  for (const trigger of await store.triggers.pending(BATCH)) {
    const definition = catalog.find(trigger.pipeline);
    let params: RunParams | undefined;
    let reason: string | undefined;
    if (!definition) reason = `unknown pipeline '${trigger.pipeline}'`;
    else {
      try {
        params = resolveRunParams(definition, JSON.parse(trigger.paramsJson) as Record<string, unknown>);
      } catch (error) {
        reason = (error as Error).message;
      }
    }
    if (!definition || !params) {
      await store.triggers.reject(trigger.id, reason ?? 'invalid trigger');
      logger.warn({ triggerId: trigger.id, reason }, 'pipeline trigger rejected');
      continue;
    }
    // Stays pending: the next pass launches it once the run holding the key finishes.
    if (trigger.concurrencyKey && (await store.hasActiveRun(trigger.concurrencyKey))) continue;
    const runId = newId('run');
    const launched = await store.db.kysely.transaction().execute(async (trx) => {
      if (!(await store.triggers.launch(trigger.id, runId, trx))) return false;
      await store.createRun(
        {
          id: runId,
          definition,
          params,
          source: 'trigger',
          triggerId: trigger.id,
          concurrencyKey: trigger.concurrencyKey,
        },
        trx,
      );
      return true;
    });
    if (launched) logger.info({ triggerId: trigger.id, runId, pipeline: trigger.pipeline }, 'trigger launched a run');
  }
}
