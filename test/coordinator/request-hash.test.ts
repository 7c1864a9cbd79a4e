import { describe, expect, it } from 'vitest';
import { requestHash } from '../../coordinator/request-hash.ts';

describe('request hash', () => {
  it('is the same whatever the key order', () => {
    expect(requestHash({ a: 1, b: { c: [1, 2], d: 'x' } })).toBe(requestHash({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  });
  it('differs when any value differs, including array order', () => {
    expect(requestHash({ tags: ['1', '2'] })).not.toBe(requestHash({ tags: ['2', '1'] }));
    expect(requestHash({ a: 1 })).not.toBe(requestHash({ a: '1' }));
  });
});
