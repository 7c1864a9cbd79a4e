import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../adapters/logger.ts';
import { BackgroundSyncs } from '../../../worker/builders/background-syncs.ts';

describe('work after the build is reported', () => {
  const log = createLogger('test', { pretty: false, level: 'silent' });

  it('runs one key\'s tasks in order, lets another key run beside them, and settles a key once its chain is done', async () => {
    const syncs = new BackgroundSyncs(log);
    const seen: string[] = [];
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    syncs.run('a', 'first', async () => {
      await gate;
      seen.push('a1');
    });
    syncs.run('a', 'second', () => Promise.resolve(void seen.push('a2')));
    syncs.run('b', 'other', () => Promise.resolve(void seen.push('b1')));
    await syncs.settled('b');
    expect(seen).toEqual(['b1']);
    release();
    await syncs.settled('a');
    expect(seen).toEqual(['b1', 'a1', 'a2']);
  });

  it('a failed task is logged, not thrown, and the chain goes on', async () => {
    const syncs = new BackgroundSyncs(log);
    const seen: string[] = [];
    syncs.run('a', 'fails', () => Promise.reject(new Error('registry down')));
    syncs.run('a', 'next', () => Promise.resolve(void seen.push('next')));
    await expect(syncs.settled('a')).resolves.toBeUndefined();
    expect(seen).toEqual(['next']);
  });

  it('drain waits for everything, and aborts what outlives its bound', async () => {
    const syncs = new BackgroundSyncs(log);
    let aborted = false;
    syncs.run('slow', 'never ends', (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => {
      aborted = true;
      resolve();
    })));
    await syncs.drain(50);
    expect(aborted).toBe(true);
  });
});
