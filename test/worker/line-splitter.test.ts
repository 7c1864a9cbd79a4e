import { describe, expect, it } from 'vitest';
import { LineSplitter } from '../../worker/line-splitter.ts';
import { LogMasker } from '../../worker/log-masker.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A splitter that records what it emits; `lines` can be read between pushes. */
function splitter(maxLine = 1024, masker = new LogMasker([])): { s: LineSplitter; lines: string[] } {
  const lines: string[] = [];
  const s = new LineSplitter(masker, maxLine, (l) => {
    lines.push(l);
    return Promise.resolve();
  });
  return { s, lines };
}

async function split(chunks: (string | Uint8Array)[], maxLine = 1024): Promise<string[]> {
  const { s, lines } = splitter(maxLine);
  for (const c of chunks) await s.push(typeof c === 'string' ? enc(c) : c);
  await s.end();
  return lines;
}

/** Every byte of `text` as its own chunk. */
function bytewise(text: string): Uint8Array[] {
  return [...enc(text)].map((b) => Uint8Array.of(b));
}

describe('line endings', () => {
  it('emits each LF-terminated line without its newline, keeping empty lines', async () => {
    expect(await split(['one\ntwo\n\nfour\n'])).toEqual(['one', 'two', '', 'four']);
  });

  it('strips the CR of a CRLF ending', async () => {
    expect(await split(['one\r\ntwo\r\n'])).toEqual(['one', 'two']);
  });

  it('strips the CR of a CRLF ending whose CR and LF arrive in different chunks', async () => {
    expect(await split(['one\r', '\ntwo\r\n'])).toEqual(['one', 'two']);
  });

  it('does not treat a bare CR as a line break: a CR progress sequence is one line, emitted at its LF', async () => {
    expect(await split(['10%\r', '55%\r', '100%\n', 'done\n'])).toEqual(['10%\r55%\r100%', 'done']);
  });

  it('keeps a progress stream that only ever sends CRs bounded by maxLine, losing nothing', async () => {
    const progress = Array.from({ length: 200 }, (_, i) => `${i}%\r`).join('');
    const { s, lines } = splitter(64);
    for (let i = 0; i < progress.length; i += 7) await s.push(enc(progress.slice(i, i + 7)));
    // Already flowing before the stream ends: it is not held until a LF that never comes.
    expect(lines.length).toBeGreaterThan(0);
    await s.end();
    expect(lines.every((l) => l.length <= 64)).toBe(true);
    expect(lines.join('')).toBe(progress);
  });
});

describe('partial lines across chunks', () => {
  it('joins a line delivered in several chunks and emits nothing until its newline', async () => {
    const { s, lines } = splitter();
    await s.push(enc('hel'));
    await s.push(enc('lo wor'));
    expect(lines).toEqual([]);
    await s.push(enc('ld\nnext'));
    expect(lines).toEqual(['hello world']);
    await s.push(enc('\n'));
    expect(lines).toEqual(['hello world', 'next']);
  });

  it('emits several lines from one chunk, in order', async () => {
    expect(await split(['a\nb\nc\n'])).toEqual(['a', 'b', 'c']);
  });

  it('gives the same lines whether the stream arrives whole or one byte at a time', async () => {
    const text = 'step 1/3: FROM base\r\nüñíçødé ✓ 😀\n\n50%\r100%\nlast';
    expect(await split(bytewise(text))).toEqual(await split([text]));
    expect(await split(bytewise(text))).toEqual(['step 1/3: FROM base', 'üñíçødé ✓ 😀', '', '50%\r100%', 'last']);
  });
});

describe('multibyte UTF-8 split across chunks', () => {
  it.each([
    ['a 2-byte character', 'é'],
    ['a 3-byte character', '€'],
    ['a 4-byte character', '😀'],
  ])('reassembles %s whose bytes arrive in separate chunks', async (_, ch) => {
    const lines = await split([...bytewise(`x${ch}y`), enc('\n')]);
    expect(lines).toEqual([`x${ch}y`]);
    expect(lines[0]).not.toContain('\uFFFD');
  });

  it('reassembles a character split across the chunk that also ends the previous line', async () => {
    const bytes = enc('first\n€second\n');
    // cut after the first byte of the euro sign
    expect(await split([bytes.slice(0, 7), bytes.slice(7)])).toEqual(['first', '€second']);
  });

  it('flushes a truncated multibyte sequence at end of stream as U+FFFD instead of dropping the line', async () => {
    expect(await split([Uint8Array.of(0x61, 0xe2, 0x82)])).toEqual(['a\uFFFD']);
  });
});

describe('very long lines', () => {
  it('emits a line of exactly maxLine characters whole', async () => {
    expect(await split(['x'.repeat(8) + '\n'], 8)).toEqual(['xxxxxxxx']);
  });

  it('splits a line one character over maxLine into maxLine and the rest', async () => {
    expect(await split(['x'.repeat(8) + 'y\n'], 8)).toEqual(['xxxxxxxx', 'y']);
  });

  it('cuts a long line into maxLine pieces as it arrives, without waiting for its end, and loses nothing', async () => {
    const long = 'abcdefghij'.repeat(100);
    const { s, lines } = splitter(64);
    await s.push(enc(long));
    expect(lines.length).toBeGreaterThanOrEqual(Math.floor(long.length / 64) - 1);
    await s.push(enc('\nnext\n'));
    await s.end();
    expect(lines.at(-1)).toBe('next');
    const pieces = lines.slice(0, -1);
    expect(pieces.every((p) => p.length <= 64)).toBe(true);
    expect(pieces.join('')).toBe(long);
  });

  it('never emits a piece longer than maxLine, whatever the chunking', async () => {
    const text = `${'y'.repeat(300)}\nshort\n${'z'.repeat(129)}\r\n${'w'.repeat(50)}`;
    for (const chunks of [[text], bytewise(text)]) {
      const lines = await split(chunks, 32);
      expect(lines.every((l) => l.length <= 32)).toBe(true);
      expect(lines.join('')).toBe(text.replaceAll('\r\n', '').replaceAll('\n', ''));
    }
  });
});

describe('flush at end', () => {
  it('emits an unterminated last line on end()', async () => {
    const { s, lines } = splitter();
    await s.push(enc('done\npartial'));
    expect(lines).toEqual(['done']);
    await s.end();
    expect(lines).toEqual(['done', 'partial']);
  });

  it('emits no extra empty line on end() when the stream ended with a newline', async () => {
    expect(await split(['a\nb\n'])).toEqual(['a', 'b']);
  });

  it('emits nothing for an empty stream', async () => {
    expect(await split([])).toEqual([]);
  });

  it('splits a long unterminated tail into maxLine pieces on end()', async () => {
    const tail = 'q'.repeat(20);
    // Under maxLine + longest secret nothing is cut during push; end() must still bound the pieces.
    const { s, lines } = splitter(8, new LogMasker(['0123456789abcdefghijklmnop']));
    await s.push(enc(tail));
    await s.end();
    expect(lines).toEqual(['qqqqqqqq', 'qqqqqqqq', 'qqqq']);
  });
});

describe('emitting', () => {
  it('masks every line it emits, including CRLF lines and the flushed tail', async () => {
    const secret = 'hunter2-secret';
    const { s, lines } = splitter(1024, new LogMasker([secret]));
    await s.push(enc(`pw=${secret}\r\nagain ${secret.slice(0, 5)}`));
    await s.push(enc(`${secret.slice(5)}`));
    await s.end();
    expect(lines).toEqual(['pw=***', 'again ***']);
  });

  it('waits for each emit to finish before emitting the next line (order and backpressure)', async () => {
    const events: string[] = [];
    const s = new LineSplitter(new LogMasker([]), 1024, async (l) => {
      events.push(`start ${l}`);
      await new Promise((r) => setTimeout(r, 5));
      events.push(`end ${l}`);
    });
    await s.push(enc('a\nb\n'));
    events.push('push returned');
    expect(events).toEqual(['start a', 'end a', 'start b', 'end b', 'push returned']);
  });
});
