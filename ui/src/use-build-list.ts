import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, streamBuilds, type BuildListEvent, type BuildSummary } from './api.ts';

/** While the stream is down, the list is asked this often instead (the console's old way). */
export const POLL_MS = 2_000;
/** The longest wait before trying the stream again after failures (it doubles from 1 s). */
const MAX_RETRY_MS = 30_000;

export interface BuildListState {
  data: { builds: BuildSummary[]; total: number } | null;
  error: ApiError | null;
  /** 'stream' while the live stream is up, 'poll' while the list is polled in its stead */
  mode: 'stream' | 'poll';
}

const newestFirst = (a: BuildSummary, b: BuildSummary): number => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id.localeCompare(b.id));

/** Applies stream events to a list that shows at most `limit` rows, newest first. */
export function applyEvents(list: { builds: BuildSummary[]; total: number } | null, events: readonly BuildListEvent[], limit: number): { builds: BuildSummary[]; total: number } | null {
  let builds = list?.builds ?? [];
  let total = list?.total ?? 0;
  for (const e of events) {
    total = e.total;
    if (e.type === 'snapshot') builds = e.builds;
    else if (e.type === 'remove') builds = builds.filter((b) => b.id !== e.id);
    else builds = [...builds.filter((b) => b.id !== e.build.id), e.build].sort(newestFirst).slice(0, limit);
  }
  if (list === null && !events.some((e) => e.type === 'snapshot')) return null;
  return { builds, total };
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * The builds list for `query` (a query string of GET /v1/builds, with `limit`), live: from the
 * coordinator's stream (GET /v1/builds?watch=1) when it is up; when it fails, polled every 2 s
 * while the stream is tried again (1 s, 2 s, 4 s … 30 s apart). A stream that ends or drops after
 * delivering is reopened at once, and every reopening sends Last-Event-ID, so the server sends what
 * changed, not a new snapshot.
 */
export function useBuildList(query: string, limit: number): BuildListState {
  const [state, setState] = useState<BuildListState>({ data: null, error: null, mode: 'stream' });
  useEffect(() => {
    const ac = new AbortController();
    const { signal } = ac;
    const cursor: { lastEventId: string | null } = { lastEventId: null };
    setState({ data: null, error: null, mode: 'stream' });
    const poll = async (): Promise<void> => {
      try {
        const data = await api<{ builds: BuildSummary[]; total: number }>(`/v1/builds?${query}`, {}, signal);
        setState({ data, error: null, mode: 'poll' });
      } catch (e) {
        if (!signal.aborted) setState((s) => ({ ...s, error: e instanceof ApiError ? e : new ApiError(0, 'E_NETWORK', String(e)), mode: 'poll' }));
      }
    };
    void (async () => {
      let failures = 0;
      while (!signal.aborted) {
        let delivered = false;
        try {
          await streamBuilds(query, cursor, (events) => {
            delivered = true;
            failures = 0;
            setState((s) => ({ data: applyEvents(s.data, events, limit), error: null, mode: 'stream' }));
          }, signal);
          // ended by the server after delivering (it cuts a reader that fell behind): resume at once
          if (delivered) continue;
          failures++;
        } catch (e) {
          if (signal.aborted) return;
          // a refusal of the query itself would be refused by polling too: show it
          if (e instanceof ApiError && e.status >= 400 && e.status < 500) setState((s) => ({ ...s, error: e }));
          failures++;
        }
        // A stream that was up and dropped (a restarted proxy, a network blip) is reopened at once,
        // still with Last-Event-ID: the server sends only the builds changed since.
        if (delivered && failures === 1) continue;
        // The cursor is kept through polling too: what a resume sends is each changed build's
        // current row (or its removal), never an older one, so it is right on top of a newer poll;
        // a server that no longer holds the id (or another replica) answers with a snapshot.
        const retryAt = Date.now() + Math.min(MAX_RETRY_MS, 500 * 2 ** failures);
        do {
          await poll();
          await sleep(Math.min(POLL_MS, Math.max(0, retryAt - Date.now())), signal);
        } while (!signal.aborted && Date.now() < retryAt);
      }
    })();
    return () => ac.abort();
  }, [query, limit]);
  return state;
}
