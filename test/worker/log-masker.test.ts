import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { LogLine } from '../../protocol/index.ts';
import { KanikoOutput } from '../../worker/builders/kaniko.ts';
import type { BuildOutput } from '../../worker/builders/types.ts';
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

/** A PEM block whose body's last line is `tail` characters long (4 when `bytes` is 48k + 3). */
function pem(label: string, bytes: number): string {
  const body = randomBytes(bytes).toString('base64').match(/.{1,64}/g) ?? [];
  return [`-----BEGIN ${label}-----`, ...body, `-----END ${label}-----`, ''].join('\n');
}

/** What the user would see of `text` printed by a build, one line at a time. */
async function printed(masker: LogMasker, text: string, prefix = ''): Promise<string[]> {
  return split(masker, 1024, text.split('\n').map((l) => `${prefix}${l}\n`));
}

describe('log masking: encodings of declared secrets', () => {
  // `?`, `>` and `~` make the standard base64 hold `/` and `+`; `"` and `\\` need JSON escapes.
  const secret = 'p@ss w0rd?>~"q\\ü-Zz9';

  it('masks base64url at every alignment, where it differs from standard base64', () => {
    const m = new LogMasker([secret]);
    for (const prefix of ['', 'a', 'ab']) {
      const std = Buffer.from(`${prefix}${secret}tail`).toString('base64');
      const url = Buffer.from(`${prefix}${secret}tail`).toString('base64url');
      expect(url).not.toBe(std.replace(/=+$/, ''));
      expect(m.mask(`jwt.${url}.sig`)).not.toContain(url.slice(4, 20));
    }
  });

  it('masks hex, lower and upper case', () => {
    const m = new LogMasker([secret]);
    const hex = Buffer.from(secret).toString('hex');
    expect(m.mask(`dump ${hex} end`)).toBe('dump *** end');
    expect(m.mask(`DUMP ${hex.toUpperCase()}`)).toBe('DUMP ***');
  });

  it('masks URL-encoded forms: encodeURIComponent, form encoding and lower-case escapes', () => {
    const m = new LogMasker([secret]);
    const url = encodeURIComponent(secret);
    expect(url).not.toBe(secret);
    expect(m.mask(`GET https://u:${url}@host/`)).toBe('GET https://u:***@host/');
    expect(m.mask(`body=${url.replace(/%20/g, '+')}&x=1`)).toBe('body=***&x=1');
    expect(m.mask(`q=${url.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase())}`)).toBe('q=***');
  });

  it('masks JSON-escaped forms, with and without escaped non-ASCII', () => {
    const m = new LogMasker([secret]);
    expect(m.mask(JSON.stringify({ password: secret }))).toBe('{"password":"***"}');
    const ascii = JSON.stringify(secret).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    expect(m.mask(`{"password":${ascii}}`)).toBe('{"password":"***"}');
  });

  it('masks standard base64 wrapped at 76 columns, down to a short last row, with or without the newline echo adds', async () => {
    // 57 bytes per 76-column row: 3 bytes more leave a 4-character last row.
    const value = randomBytes(87).toString('hex');
    const m = new LogMasker([value]);
    for (const input of [value, `${value}\n`]) {
      const rows = Buffer.from(input).toString('base64').match(/.{1,76}/g) ?? [];
      if (input === value) expect(rows.at(-1)).toHaveLength(4);
      expect(await printed(m, rows.join('\n'))).toEqual(rows.map(() => '***'));
    }
  });

  it('masks a PEM key printed as-is: no line of it is left, short last body line included', async () => {
    const key = pem('RSA PRIVATE KEY', 48 * 20 + 3);
    const body = key.split('\n').slice(1, -2);
    expect(body.at(-1)).toHaveLength(4);
    const m = new LogMasker([key]);
    const out = await printed(m, `cat id_rsa\n${key}done`, '#6 0.412 ');
    expect(out[0]).toBe('#6 0.412 cat id_rsa');
    expect(out.at(-1)).toBe('#6 0.412 done');
    for (const line of out.slice(1, -1)) expect(line).toBe('#6 0.412 ***');
    for (const line of body) expect(out.join('\n')).not.toContain(line);
  });

  it('masks a whole multi-line secret JSON-escaped on one line', () => {
    const key = pem('OPENSSH PRIVATE KEY', 300);
    expect(new LogMasker([key]).mask(`{"key":${JSON.stringify(key)}}`)).toBe('{"key":"***"}');
  });

  it('leaves a short line alone unless it follows its line of the secret', async () => {
    const key = pem('EC PRIVATE KEY', 48 * 2 + 3);
    const tail = key.split('\n').at(-3) ?? '';
    expect(tail).toHaveLength(4);
    expect(await printed(new LogMasker([key]), `${tail}\nx ${tail}`)).toEqual([tail, `x ${tail}`]);
  });
});

describe('log masking: build args and secret-shaped text', () => {
  const npm = `npm_${'Ab3'.repeat(12)}`;

  it('masks a build arg named like a secret, as BuildKit prints it in a step header', () => {
    const m = new LogMasker([], [], { NPM_TOKEN: 'tok-live-7f3a9c2e55b14d0e', GREETING: 'hello world' });
    expect(m.mask('#6 [2/2] RUN echo "//registry.npmjs.org/:_authToken=tok-live-7f3a9c2e55b14d0e" > .npmrc && echo hello world')).toBe(
      '#6 [2/2] RUN echo "//registry.npmjs.org/:_authToken=***" > .npmrc && echo hello world',
    );
  });

  it('masks a build arg whose value looks like a token whatever its name, and its encodings', () => {
    const value = `x-${npm}-x`;
    const m = new LogMasker([], [], { NOTE: value });
    expect(m.mask(`#7 [3/3] RUN echo ${value}`)).toBe('#7 [3/3] RUN echo ***');
    expect(m.mask(`b64 ${Buffer.from(value).toString('base64')}`)).toBe('b64 ***');
  });

  it('masks secret-shaped text that came from nowhere declared', () => {
    const m = new LogMasker([]);
    expect(m.mask(`aws AKIAABCDEFGHIJKLMNOP npm ${npm}`)).toBe('aws *** npm ***');
  });

  it('applies platform patterns that cannot join the combined regex (flags, backreferences)', () => {
    const m = new LogMasker([], [/internal-[a-z]{6}/gi, /(['"])hidden\1/g]);
    expect(m.mask('host INTERNAL-ABCDEF said \'hidden\' and "hidden\'')).toBe('host *** said *** and "hidden\'');
  });
});

describe('log masking: kaniko', () => {
  it('masks a kaniko line after undoing its Go quoting, as the user reads it', async () => {
    // Too short for its escaped form (`p\"w\\x`) to be masked before the unescaping.
    const secret = 'p"w\\x';
    const masker = new LogMasker([secret], [/"auth":"[^"]*"/g]);
    const seen: string[] = [];
    const inner: BuildOutput = {
      masker,
      maxLine: 1024,
      line: (_stream: LogLine['stream'], text: string) => {
        seen.push(text);
        return Promise.resolve();
      },
    };
    const tap = new KanikoOutput(inner);
    const quote = (s: string): string => s.replace(/["\\]/g, (c) => `\\${c}`);
    const lines = new LineSplitter(masker, 1024, (text) => tap.line('stderr', text));
    await lines.push(new TextEncoder().encode(`time="2024-05-01T10:00:00Z" level=info msg="${quote(`RUN echo ${secret}`)}"\n`));
    await lines.push(new TextEncoder().encode(`time="2024-05-01T10:00:01Z" level=error msg="${quote('bad config {"auth":"eDp5"} at\\n')}"\n`));
    await lines.end();
    expect(seen).toEqual(['RUN echo ***', 'error: bad config {***} at\\n']);
    expect(tap.lastStep).toBe('RUN echo ***');
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

  it('never cuts a long line inside an encoded form or a value too short for the literal scan', async () => {
    const hex = Buffer.from(SECRET).toString('hex');
    const m = new LogMasker([SECRET, 'k3y!x']);
    for (const [value, at] of [[hex, 990], ['k3y!x', 998]] as const) {
      const line = `${'y'.repeat(at)}${value}${'z'.repeat(990)}`;
      const pieces = await split(m, 1_000, [line.slice(0, 995), line.slice(995), '\n']);
      expect(pieces.join('')).not.toContain(value.slice(0, 3));
      expect(pieces.join('')).toContain('***');
    }
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
