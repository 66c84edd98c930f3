import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
import type { EventBus } from './bus.ts';
import { createDispatcher } from './dispatcher.ts';
import { createEventRows } from './event-rows.ts';

/**
 * In-process bus persisted in the metadata DB: the embedded default. With one process every
 * subscription sees every event, so a subscription's `group` changes nothing here.
 */
export function createLocalEventBus(options: { db: MetadataDb; logger: Logger }): EventBus {
  const rows = createEventRows(options.db);
  const dispatcher = createDispatcher(options.logger);

  return {
    publish: (input) => rows.store(input, dispatcher.dispatch),
    subscribe: (type, handler) => dispatcher.subscribe(type, handler),
    list: (filter) => rows.list(filter),
    get: (id) => rows.get(id),
    drain: () => dispatcher.settled(),
    async close() {
      dispatcher.clear();
      await dispatcher.settled();
    },
  };
}
