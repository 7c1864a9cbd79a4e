import type { BuildView } from '../protocol/index.ts';
import type { BuildStore } from './build-store.ts';
import { toView } from './intake.ts';

/**
 * Cancels a queued or running build. A queued build then never starts (its claim is refused); a
 * running one is stopped by its worker, which watches the record. An ended build is left as it
 * is, and the answer says nothing was cancelled.
 */
export async function cancelBuild(store: BuildStore, id: string): Promise<{ build: BuildView; cancelled: boolean }> {
  let cancelled = false;
  const record = await store.transition(id, (r) => {
    const s = r.state;
    cancelled = s.phase === 'queued' || s.phase === 'running';
    if (!cancelled) return null;
    return { phase: 'cancelled', attempt: s.phase === 'running' ? s.attempt : 0, finishedAt: new Date().toISOString() };
  });
  return { build: toView(record), cancelled };
}
