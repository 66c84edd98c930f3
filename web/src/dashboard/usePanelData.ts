import { useCallback, useEffect, useRef, useState } from 'react';
import { describeFailure } from '../lib/api.ts';

export interface PanelData<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads a panel's data, reloads it when `refreshKey` changes (a live event concerning the
 * panel) and every `pollMs` for data whose API publishes no events, and keeps the last good
 * data on screen while a reload is in flight.
 */
export function usePanelData<T>(
  load: (signal: AbortSignal) => Promise<T>,
  refreshKey: unknown,
  pollMs?: number,
): PanelData<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  const loaded = useRef(false);
  loader.current = load;

  // biome-ignore lint/correctness/useExhaustiveDependencies: refreshKey and tick are the reload triggers.
  useEffect(() => {
    const controller = new AbortController();
    // Only the first load shows "loading…"; later reloads replace the data in place.
    if (!loaded.current) setLoading(true);
    loader.current(controller.signal).then(
      (value) => {
        loaded.current = true;
        setData(value);
        setError(null);
        setLoading(false);
      },
      (failure: unknown) => {
        if (controller.signal.aborted) return;
        setError(describeFailure(failure));
        setLoading(false);
      },
    );
    return () => controller.abort();
  }, [refreshKey, tick]);

  useEffect(() => {
    if (!pollMs) return;
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') setTick((value) => value + 1);
    }, pollMs);
    return () => clearInterval(timer);
  }, [pollMs]);

  const reload = useCallback(() => setTick((value) => value + 1), []);
  return { data, error, loading, reload };
}
