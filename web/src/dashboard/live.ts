import { useEffect, useRef, useState } from 'react';
import { ApiError, authHeaders, errorFrom } from '../lib/api.ts';
import { readSse } from '../lib/sse.ts';

export interface LiveEvent {
  id: string;
  type: string;
  source: string;
  subject: string | null;
  payload: unknown;
  createdAt: string;
}

export type LiveState = 'connecting' | 'live' | 'offline' | 'needs-key';

/**
 * One connection to `GET /v1/stream` for the whole dashboard; reconnects with `Last-Event-ID`
 * so nothing published during a blip is missed.
 */
export function useLiveEvents(onEvent: (event: LiveEvent) => void, keyVersion: number): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const handler = useRef(onEvent);
  handler.current = onEvent;

  // biome-ignore lint/correctness/useExhaustiveDependencies: keyVersion reconnects with a new API key.
  useEffect(() => {
    const controller = new AbortController();
    let lastId: string | undefined;
    let attempt = 0;
    (async () => {
      while (!controller.signal.aborted) {
        try {
          setState('connecting');
          const response = await fetch('/v1/stream', {
            signal: controller.signal,
            headers: { accept: 'text/event-stream', ...authHeaders(), ...(lastId ? { 'last-event-id': lastId } : {}) },
          });
          if (!response.ok) throw await errorFrom(response);
          if (!response.body) throw new Error('no stream body');
          setState('live');
          attempt = 0;
          for await (const message of readSse(response.body)) {
            if (message.id) lastId = message.id;
            handler.current(JSON.parse(message.data) as LiveEvent);
          }
        } catch (error) {
          if (controller.signal.aborted) return;
          if (error instanceof ApiError && error.needsKey) {
            setState('needs-key');
            return;
          }
          setState('offline');
        }
        attempt++;
        await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** attempt)));
      }
    })();
    return () => controller.abort();
  }, [keyVersion]);

  return state;
}
