import { describe, expect, it } from 'vitest';
import { BoundedCache, SharedAnswers } from '../../adapters/bounded-cache.ts';

/** A clock the test moves by hand. */
function clock(start = 1_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** A computation the test settles by hand, counting how often it was started. */
function deferred<V>() {
  let resolve: (v: V) => void = () => undefined;
  let reject: (e: unknown) => void = () => undefined;
  const calls = { n: 0 };
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const compute = (): Promise<V> => {
    calls.n++;
    return promise;
  };
  return { compute, resolve, reject, calls };
}

describe('BoundedCache', () => {
  it('refuses a bound that is no positive integer, and a ttl that is not positive', () => {
    expect(() => new BoundedCache({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new BoundedCache({ maxEntries: 1.5 })).toThrow(RangeError);
    expect(() => new BoundedCache({ maxEntries: 1, ttlMs: 0 })).toThrow(RangeError);
  });

  it('forgets the least recently used past its bound: a read counts as a use', () => {
    const cache = new BoundedCache<string, number>({ maxEntries: 2 });
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBe(1);
    expect(cache.get('c')).toBe(3);
    expect(cache.size).toBe(2);
  });

  it('expires an entry at its own time, or after ttlMs from when it was set', () => {
    const c = clock();
    const cache = new BoundedCache<string, string>({ maxEntries: 10, ttlMs: 100, now: c.now });
    cache.set('ttl', 'x');
    cache.set('own', 'y', c.t + 500);
    c.t += 99;
    expect(cache.get('ttl')).toBe('x');
    c.t += 1;
    expect(cache.get('ttl')).toBeUndefined();
    expect(cache.get('own')).toBe('y');
    c.t += 400;
    expect(cache.get('own')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('without ttlMs keeps an entry until evicted; an already expired set replaces nothing and drops the old value', () => {
    const c = clock();
    const cache = new BoundedCache<string, string>({ maxEntries: 10, now: c.now });
    cache.set('k', 'old');
    c.t += 1e12;
    expect(cache.get('k')).toBe('old');
    cache.set('k', 'new', c.t);
    expect(cache.get('k')).toBeUndefined();
  });

  it('deletes and clears', () => {
    const cache = new BoundedCache<number, number>({ maxEntries: 10 });
    cache.set(1, 1);
    cache.set(2, 2);
    cache.delete(1);
    expect(cache.get(1)).toBeUndefined();
    cache.clear();
    expect(cache.size).toBe(0);
  });
});

describe('SharedAnswers', () => {
  it('concurrent asks share one computation; a later ask is answered from the cache', async () => {
    const answers = new SharedAnswers<string, number>({ maxEntries: 4 });
    const d = deferred<number>();
    const first = answers.get('k', d.compute);
    const second = answers.get('k', d.compute);
    d.resolve(7);
    expect(await Promise.all([first, second])).toEqual([7, 7]);
    expect(await answers.get('k', () => Promise.resolve(8))).toBe(7);
    expect(d.calls.n).toBe(1);
  });

  it('forgets a failed computation, so the next ask tries again', async () => {
    const answers = new SharedAnswers<string, number>({ maxEntries: 4 });
    await expect(answers.get('k', () => Promise.reject(new Error('down')))).rejects.toThrow('down');
    expect(answers.size).toBe(0);
    expect(await answers.get('k', () => Promise.resolve(2))).toBe(2);
  });

  it('forgets an answer `keep` refuses (absence is never remembered), after sharing it with the asks in flight', async () => {
    const answers = new SharedAnswers<string, number | null>({ maxEntries: 4 }, (v) => v !== null);
    const d = deferred<number | null>();
    const both = Promise.all([answers.get('k', d.compute), answers.get('k', d.compute)]);
    d.resolve(null);
    expect(await both).toEqual([null, null]);
    expect(d.calls.n).toBe(1);
    expect(await answers.get('k', () => Promise.resolve(5))).toBe(5);
    expect(await answers.get('k', () => Promise.resolve(6))).toBe(5);
  });

  it('counts the time to live from the answer, and bounds the keys it remembers', async () => {
    const c = clock();
    const answers = new SharedAnswers<string, string>({ maxEntries: 2, ttlMs: 100, now: c.now });
    const d = deferred<string>();
    const slow = answers.get('slow', d.compute);
    c.t += 80;
    d.resolve('s');
    await slow;
    c.t += 99;
    expect(await answers.get('slow', () => Promise.resolve('again'))).toBe('s');
    c.t += 1;
    expect(await answers.get('slow', () => Promise.resolve('again'))).toBe('again');
    await answers.get('a', () => Promise.resolve('a'));
    await answers.get('b', () => Promise.resolve('b'));
    expect(answers.size).toBe(2);
    expect(await answers.get('slow', () => Promise.resolve('third'))).toBe('third');
  });
});
