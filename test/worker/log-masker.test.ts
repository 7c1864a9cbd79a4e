import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../worker/line-splitter.ts';
import { LogMasker } from '../../worker/log-masker.ts';

const SECRET = 's3cr3t-T0ken-value';

async function split(masker: LogMasker, maxLine: number, chunks: string[]): Promise<string[]> {
  const out: string[] = [];
  const s = new LineSplitter(masker, maxLine, (l) => {
    out.push(l);
    return Promise.resolve();
  });
  for (const c of chunks) await s.push(new TextEncoder().encode(c));
  await s.end();
  return out;
}

describe('log masking', () => {
  it('masks a secret value and its base64 form at every alignment', () => {
    const m = new LogMasker([SECRET]);
    expect(m.mask(`token=${SECRET}!`)).toBe('token=***!');
    for (const prefix of ['', 'a', 'ab', 'abc']) {
      const encoded = Buffer.from(`${prefix}${SECRET}xyz`).toString('base64');
      expect(m.mask(encoded)).toContain('***');
      expect(m.mask(encoded)).not.toContain(Buffer.from(SECRET).toString('base64').slice(4, 16));
    }
  });

  it('masks platform patterns', () => {
    const m = new LogMasker([], [/ghp_[A-Za-z0-9]{10,}/g]);
    expect(m.mask('using ghp_abcdefghij1234 now')).toBe('using *** now');
  });

  it('ignores values too short to mask meaningfully', () => {
    expect(new LogMasker(['ab']).mask('abc')).toBe('abc');
  });
});

describe('line splitting', () => {
  it('masks a secret split across two output chunks', async () => {
    const m = new LogMasker([SECRET]);
    expect(await split(m, 1024, [`before ${SECRET.slice(0, 7)}`, `${SECRET.slice(7)} after\n`])).toEqual(['before *** after']);
  });

  it('splits a very long line into bounded pieces without dropping any of it', async () => {
    const m = new LogMasker([]);
    const long = 'x'.repeat(10_000);
    const pieces = await split(m, 1_000, [long.slice(0, 3_333), long.slice(3_333), '\nnext\n']);
    expect(pieces.slice(0, -1).every((p) => p.length <= 1_000)).toBe(true);
    expect(pieces.slice(0, -1).join('')).toBe(long);
    expect(pieces.at(-1)).toBe('next');
  });

  it('never cuts a long line inside a secret', async () => {
    const m = new LogMasker([SECRET]);
    const line = `${'y'.repeat(990)}${SECRET}${'z'.repeat(990)}`;
    const pieces = await split(m, 1_000, [line.slice(0, 995), line.slice(995), '\n']);
    expect(pieces.join('')).not.toContain(SECRET.slice(0, 8));
    expect(pieces.join('')).toContain('***');
  });

  it('keeps memory bounded: a 200,000-line flood never buffers more than one line', async () => {
    const m = new LogMasker([SECRET]);
    let count = 0;
    let longest = 0;
    const s = new LineSplitter(m, 512, (l) => {
      count += 1;
      longest = Math.max(longest, l.length);
      return Promise.resolve();
    });
    const chunk = new TextEncoder().encode('line of build output\n'.repeat(1_000));
    for (let i = 0; i < 200; i++) await s.push(chunk);
    await s.end();
    expect(count).toBe(200_000);
    expect(longest).toBeLessThanOrEqual(512);
  });
});
