import { UnavailableError } from '../core/errors.ts';
import { OverloadedError, RequestCancelledError } from './errors.ts';

export interface SlotLimiterOptions {
  slots: number;
  maxWaiting: number;
  maxWaitMs: number;
}

export interface SlotLimiter {
  /** Resolves with a release function once a slot is free; rejects at once when the line is full. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  readonly running: number;
  readonly waiting: number;
}

interface Waiter {
  grant(): void;
}

/**
 * At most `slots` generations at once and a bounded line behind them: a request beyond the
 * line gets 429, one that waited `maxWaitMs` gets 503, both with a Retry-After estimated from
 * how long slots have recently been held.
 */
export function createSlotLimiter(options: SlotLimiterOptions): SlotLimiter {
  let running = 0;
  const queue: Waiter[] = [];
  // Exponentially weighted mean of how long a request holds a slot, in ms.
  let holdMs = 1_000;

  const retryAfterSeconds = () => Math.max(1, Math.ceil(((queue.length + 1) / options.slots) * (holdMs / 1000)));

  function releaser(): () => void {
    const since = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      holdMs = holdMs * 0.8 + (performance.now() - since) * 0.2;
      const next = queue.shift();
      if (next) next.grant();
      else running -= 1;
    };
  }

  return {
    get running() {
      return running;
    },
    get waiting() {
      return queue.length;
    },
    acquire(signal) {
      if (signal?.aborted) return Promise.reject(new RequestCancelledError());
      if (running < options.slots && queue.length === 0) {
        running += 1;
        return Promise.resolve(releaser());
      }
      if (queue.length >= options.maxWaiting)
        return Promise.reject(new OverloadedError(queue.length, retryAfterSeconds()));
      return new Promise((resolve, reject) => {
        const leave = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const index = queue.indexOf(waiter);
          if (index >= 0) queue.splice(index, 1);
        };
        const onAbort = () => {
          leave();
          reject(new RequestCancelledError());
        };
        const timer = setTimeout(() => {
          leave();
          reject(
            new UnavailableError(`no free generation slot within ${options.maxWaitMs} ms`, retryAfterSeconds(), 503),
          );
        }, options.maxWaitMs);
        // The slot passes straight from the releasing request to this one: `running` stays put.
        const waiter: Waiter = {
          grant: () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            resolve(releaser());
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(waiter);
      });
    },
  };
}
