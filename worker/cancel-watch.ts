import type { KV } from '@nats-io/kv';
import { BuildRecord } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';

/**
 * Watches a build's record while the worker builds it and aborts when the build is cancelled.
 * A KV watch rather than a one-shot message: a cancel issued while the worker was briefly
 * disconnected is still seen when it reconnects. Returns the function that stops watching.
 */
export async function watchForCancel(kv: KV, buildId: string, onCancel: () => void, log: Logger): Promise<() => void> {
  const watch = await kv.watch({ key: buildId });
  void (async () => {
    for await (const entry of watch) {
      if (entry.operation !== 'PUT') continue;
      const parsed = BuildRecord.safeParse(entry.json());
      if (parsed.success && parsed.data.state.phase === 'cancelled') {
        log.info('build cancelled: stopping it');
        onCancel();
        return;
      }
    }
  })().catch((e: unknown) => log.warn({ err: e }, 'cancel watch ended'));
  return () => watch.stop();
}
