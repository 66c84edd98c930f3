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
 * panel), and keeps the last good data on screen while a reload is in flight.
 */
export function usePanelData<T>(load: (signal: AbortSignal) => Promise<T>, refreshKey: unknown): PanelData<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loader = useRef(load);
  loader.current = load;

  // biome-ignore lint/correctness/useExhaustiveDependencies: refreshKey and tick are the reload triggers.
  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    loader.current(controller.signal).then(
      (value) => {
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

  const reload = useCallback(() => setTick((value) => value + 1), []);
  return { data, error, loading, reload };
}
