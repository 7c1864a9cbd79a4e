import { describe, expect, it } from 'vitest';
import { ContextPresence } from '../../coordinator/context-ref.ts';

/** An S3 HEAD that knows some keys and counts its calls; `gate` holds every answer until opened. */
function s3(known: Record<string, number>) {
  const heads: string[] = [];
  let open: () => void = () => undefined;
  let gate: Promise<void> = Promise.resolve();
  return {
    heads,
    hold: () => {
      gate = new Promise<void>((resolve) => (open = resolve));
    },
    release: () => open(),
    head: async (key: string): Promise<{ size: number } | null> => {
      heads.push(key);
      await gate;
      const size = known[key];
      return size === undefined ? null : { size };
    },
  };
}

describe('whether a context is in S3', () => {
  it('remembers a content address seen there for ttlMs, then asks again', async () => {
    const clock = { t: 0 };
    const store = s3({ 'contexts/sha256/a.tar.gz': 10 });
    const presence = new ContextPresence(store.head, { ttlMs: 1000, maxEntries: 10, now: () => clock.t });
    expect(await presence.lookup('contexts/sha256/a.tar.gz', true)).toEqual({ size: 10 });
    clock.t = 999;
    expect(await presence.lookup('contexts/sha256/a.tar.gz', true)).toEqual({ size: 10 });
    expect(store.heads).toHaveLength(1);
    clock.t = 1000;
    await presence.lookup('contexts/sha256/a.tar.gz', true);
    expect(store.heads).toHaveLength(2);
  });

  it('never remembers absence, nor a key that is no content address', async () => {
    const store = s3({ 'uploads/x.tar.gz': 5 });
    const presence = new ContextPresence(store.head, { ttlMs: 60_000, maxEntries: 10 });
    expect(await presence.lookup('contexts/sha256/b.tar.gz', true)).toBeNull();
    expect(await presence.lookup('contexts/sha256/b.tar.gz', true)).toBeNull();
    expect(await presence.lookup('uploads/x.tar.gz', false)).toEqual({ size: 5 });
    expect(await presence.lookup('uploads/x.tar.gz', false)).toEqual({ size: 5 });
    expect(store.heads).toEqual(['contexts/sha256/b.tar.gz', 'contexts/sha256/b.tar.gz', 'uploads/x.tar.gz', 'uploads/x.tar.gz']);
  });

  it('shares one HEAD between concurrent asks, and forgets the least recently seen past maxEntries', async () => {
    const store = s3({ a: 1, b: 2, c: 3 });
    const presence = new ContextPresence(store.head, { ttlMs: 60_000, maxEntries: 2 });
    store.hold();
    const both = Promise.all([presence.lookup('a', true), presence.lookup('a', true)]);
    store.release();
    expect(await both).toEqual([{ size: 1 }, { size: 1 }]);
    expect(store.heads).toEqual(['a']);
    await presence.lookup('b', true);
    await presence.lookup('a', true);
    await presence.lookup('c', true);
    store.heads.length = 0;
    await presence.lookup('a', true);
    await presence.lookup('b', true);
    expect(store.heads).toEqual(['b']);
  });
});
