import { describe, expect, it } from 'vitest';
import { KeyedLanes } from '../../coordinator/keyed-lanes.ts';

/** A task the test finishes by hand, recording when it started. */
function gate(name: string, started: string[]): { task: () => Promise<void>; finish: () => void; fail: () => void } {
  let finish = (): void => undefined;
  let fail = (): void => undefined;
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = () => reject(new Error(name));
  });
  return {
    task: () => {
      started.push(name);
      return done;
    },
    finish: () => finish(),
    fail: () => fail(),
  };
}

/** Lets every already-settled promise's callbacks run (no clock involved). */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe('KeyedLanes', () => {
  it('runs tasks of one key one after another, in order, and tasks of other keys at once', async () => {
    const lanes = new KeyedLanes(8);
    const started: string[] = [];
    const a1 = gate('a1', started);
    const a2 = gate('a2', started);
    const b1 = gate('b1', started);
    const a3 = gate('a3', started);
    void lanes.run('a', a1.task);
    void lanes.run('a', a2.task);
    void lanes.run('b', b1.task);
    void lanes.run('a', a3.task);
    await flush();
    expect(started).toEqual(['a1', 'b1']);
    a1.finish();
    await flush();
    expect(started).toEqual(['a1', 'b1', 'a2']);
    // a failed task does not stop its key's lane
    a2.fail();
    await flush();
    expect(started).toEqual(['a1', 'b1', 'a2', 'a3']);
    expect(lanes.size).toBe(2);
    b1.finish();
    a3.finish();
    await lanes.idle();
    expect(lanes.size).toBe(0);
    expect(lanes.keys).toBe(0);
  });

  it('admits no more than its bound, counting tasks waiting behind their key, until one settles', async () => {
    const lanes = new KeyedLanes(2);
    const started: string[] = [];
    const x1 = gate('x1', started);
    const x2 = gate('x2', started);
    const y1 = gate('y1', started);
    void lanes.run('x', x1.task);
    await lanes.admit();
    void lanes.run('x', x2.task);
    let admitted = false;
    void lanes.admit().then(() => {
      admitted = true;
    });
    await flush();
    expect(admitted).toBe(false);
    expect(started).toEqual(['x1']);
    x1.finish();
    await flush();
    expect(admitted).toBe(true);
    void lanes.run('y', y1.task);
    await flush();
    expect(started).toEqual(['x1', 'x2', 'y1']);
    let idle = false;
    void lanes.idle().then(() => {
      idle = true;
    });
    x2.finish();
    await flush();
    expect(idle).toBe(false);
    y1.finish();
    await flush();
    expect(idle).toBe(true);
  });

  it('refuses a bound below 1', () => {
    expect(() => new KeyedLanes(0)).toThrow(RangeError);
  });
});
