import type { BatchingOptions, LlamaContext, LlamaContextSequence } from 'node-llama-cpp';

/**
 * One llama_decode per generation step for all sequences generating together, as llama.cpp's
 * server does. node-llama-cpp dispatches a batch on the next event-loop turn after the first
 * token is queued; the other sequences are still sampling or running their JS then, so with 4
 * streams a step took about 3 decodes of 1-2 sequences each instead of one of 4 (and a decode of
 * 4 tokens costs little more than one of 1). The gate holds a batch until every generating
 * sequence has queued, or `holdMs` passed (a sequence between requests, or busy elsewhere).
 */
export interface DecodeGate {
  /** node-llama-cpp's `batching` option for the context the gate serves. */
  batching: BatchingOptions;
  /** Called once the context exists: from then on every queued token is seen. */
  attach(context: LlamaContext): void;
  /** Runs `work` with `sequence` counted as generating: batches wait for its tokens. */
  generating<T>(sequence: LlamaContextSequence, work: () => Promise<T>): Promise<T>;
}

/**
 * The parts of node-llama-cpp 3.21.1 (an exact pin) the gate reads: the queue's sequence ids and
 * the method every decode request passes through. Neither is public API.
 */
interface ContextQueue {
  _queuedDecodeSequenceIds: Set<number>;
  _decodeTokens: (request: { sequenceId: number }, ...rest: unknown[]) => Promise<unknown>;
}
const sequenceIdOf = (sequence: LlamaContextSequence) => (sequence as unknown as { _sequenceId: number })._sequenceId;

export function createDecodeGate({ holdMs }: { holdMs: number }): DecodeGate {
  const generatingIds = new Map<number, number>();
  let queue: ContextQueue | undefined;
  let held: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const everyoneQueued = () => {
    const queued = queue?._queuedDecodeSequenceIds;
    if (!queued) return true;
    for (const id of generatingIds.keys()) if (!queued.has(id)) return false;
    return true;
  };

  function release(): void {
    clearTimeout(timer);
    timer = undefined;
    const dispatch = held;
    held = undefined;
    dispatch?.();
  }

  return {
    batching: {
      dispatchSchedule(dispatch) {
        if (everyoneQueued()) {
          dispatch();
          return;
        }
        // node-llama-cpp ignores a dispatch for a batch it has already sent, so a stale one is harmless.
        held = dispatch;
        timer = setTimeout(release, holdMs);
      },
    },
    attach(context) {
      const attached = context as unknown as ContextQueue;
      const decodeTokens = attached._decodeTokens;
      attached._decodeTokens = function (this: ContextQueue, ...args) {
        const decoded = decodeTokens.apply(this, args);
        // The request is queued synchronously above: the last one a held batch waited for may be it.
        if (held && everyoneQueued()) release();
        return decoded;
      };
      queue = attached;
    },
    async generating(sequence, work) {
      const id = sequenceIdOf(sequence);
      generatingIds.set(id, (generatingIds.get(id) ?? 0) + 1);
      try {
        return await work();
      } finally {
        const left = (generatingIds.get(id) ?? 1) - 1;
        if (left > 0) generatingIds.set(id, left);
        else generatingIds.delete(id);
        // A batch held for this sequence need not wait for it any longer.
        if (held && everyoneQueued()) release();
      }
    },
  };
}
