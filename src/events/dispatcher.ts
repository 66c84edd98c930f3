import type { Logger } from '../core/logger.ts';
import type { BerthaEvent, EventHandler } from './bus.ts';

/** The handlers subscribed in this process, and their runs not settled yet. */
export interface Dispatcher {
  subscribe(type: string, handler: EventHandler): () => void;
  /** Starts every handler of the event's type and of `*`; a failure is logged and affects no other. */
  dispatch(event: BerthaEvent): void;
  /** Resolves when every run started so far, and any started meanwhile, has settled. */
  settled(): Promise<void>;
  /** Forgets every handler (shutdown). */
  clear(): void;
}

export function createDispatcher(logger: Logger): Dispatcher {
  const handlers = new Map<string, Set<EventHandler>>();
  const inFlight = new Set<Promise<void>>();

  return {
    subscribe(type, handler) {
      const set = handlers.get(type) ?? new Set<EventHandler>();
      set.add(handler);
      handlers.set(type, set);
      return () => set.delete(handler);
    },

    dispatch(event) {
      const targets = [...(handlers.get(event.type) ?? []), ...(handlers.get('*') ?? [])];
      for (const handler of targets) {
        const run = (async () => {
          try {
            await handler(event);
          } catch (error) {
            logger.error({ err: error, eventId: event.id, eventType: event.type }, 'event handler failed');
          }
        })();
        inFlight.add(run);
        void run.finally(() => inFlight.delete(run));
      }
    },

    async settled() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },

    clear() {
      handlers.clear();
    },
  };
}
