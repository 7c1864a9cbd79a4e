import { useEffect, useState } from 'preact/hooks';
import { ApiError } from './api.ts';

/** Polls `load` every `ms` while the page is shown; a new `key` restarts it at once. */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, ms: number, key: string): { data: T | null; error: ApiError | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    const ac = new AbortController();
    let timer = 0;
    const run = async (): Promise<void> => {
      try {
        setData(await load(ac.signal));
        setError(null);
      } catch (e) {
        if (ac.signal.aborted) return;
        setError(e instanceof ApiError ? e : new ApiError(0, 'E_NETWORK', String(e)));
      }
      if (!ac.signal.aborted) timer = window.setTimeout(() => void run(), ms);
    };
    void run();
    return () => {
      ac.abort();
      clearTimeout(timer);
    };
  }, [key]);
  return { data, error };
}
