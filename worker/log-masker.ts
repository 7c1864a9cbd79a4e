import { SECRET_VALUE_PATTERNS, secretBuildArgValues } from '../protocol/index.ts';

/** Shorter fragments and encodings would match ordinary output and hide nothing worth hiding. */
const MIN_FRAGMENT = 8;
/** A whole declared value is masked from this length: masking "a" would shred every line. */
const MIN_SECRET = 4;
/** Columns tools wrap base64 at: `base64` (MIME) and `openssl base64` / PEM. */
const WRAP_COLUMNS = [76, 64] as const;

/**
 * Replaces, before a line leaves the worker, with `***`:
 * - declared secret values and the build-arg values the `no-secrets` gate would flag, raw and in
 *   the encodings a careless build prints them in (base64 and base64url at any byte alignment,
 *   base64 wrapped, hex, URL-encoded, JSON-escaped), each line of a multi-line value too;
 * - anything shaped like a secret (protocol/secret-patterns.ts) and the platform's patterns.
 * One regex carries every literal and pattern, so a line costs one scan whatever the number of
 * secrets.
 */
export class LogMasker {
  /** every literal, longest first (also the order they appear in `combined`) */
  private readonly needles: string[];
  private readonly combined: RegExp;
  /** platform patterns that cannot share a regex with the others (flags, backreferences) */
  private readonly separate: RegExp[] = [];
  /**
   * A line of a multi-line secret → the short lines that follow it. Too short to mask on their
   * own (the last line of a PEM body can be 4 characters), they are masked when they come
   * right after their predecessor, so a key printed as-is leaves no line of its body visible.
   */
  private readonly follows = new Map<string, string[]>();
  private pending: readonly string[] = [];

  constructor(
    secrets: readonly string[],
    patterns: readonly RegExp[] = [],
    buildArgs: Readonly<Record<string, string>> = {},
  ) {
    const all = new Set<string>();
    const add = (form: string): void => {
      if (form.length >= MIN_FRAGMENT) all.add(form);
    };
    /** lines printed one after another: each long one masked, each short one after its predecessor */
    const addLines = (lines: readonly string[]): void => {
      lines.forEach((line, i) => {
        add(line);
        const next = lines[i + 1];
        if (next !== undefined && next.length < MIN_FRAGMENT) this.follows.set(line, [...(this.follows.get(line) ?? []), next]);
      });
    };
    for (const value of [...secrets, ...secretBuildArgValues(buildArgs)]) {
      for (const v of new Set([value, value.trim()])) {
        if (v.length >= MIN_SECRET) all.add(v);
        const { forms, wrapped } = encodedForms(v);
        forms.forEach(add);
        wrapped.forEach(addLines);
      }
      const lines = value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
      if (lines.length < 2) continue;
      addLines(lines);
      for (const line of lines) if (line.length >= MIN_FRAGMENT) encodedForms(line).forms.forEach(add);
    }
    // Longest first: the alternation takes the first that matches, so a secret that contains
    // another is masked whole.
    this.needles = [...all].sort((a, b) => b.length - a.length);
    const shared = [...this.needles.map(escapeRegExp), ...SECRET_VALUE_PATTERNS.map((p) => p.re.source)];
    const joinable = patterns.filter((p) => p.flags.replace(/[gy]/g, '') === '' && !/\\[1-9]|\\k</.test(p.source));
    const together = tryRegExp([...shared, ...joinable.map((p) => p.source)]);
    this.combined = together ?? new RegExp(shared.join('|'), 'g');
    for (const p of patterns) {
      if (together === null || !joinable.includes(p)) this.separate.push(new RegExp(p.source, p.flags.includes('g') ? p.flags : `${p.flags}g`));
    }
  }

  /** The longest literal: a cut that keeps this many characters together never splits a secret. */
  get longest(): number {
    return this.needles[0]?.length ?? 0;
  }

  /**
   * Masks the next line of one output stream. Unlike `maskText` it remembers the line: the
   * short tail of a multi-line secret is masked only right after the line it follows.
   */
  mask(line: string): string {
    const expected = this.pending;
    const seen: string[] = [];
    let out = this.replace(line, seen);
    for (const tail of expected) {
      const end = out.trimEnd();
      if (!end.endsWith(tail)) continue;
      out = `${end.slice(0, end.length - tail.length)}***${out.slice(end.length)}`;
      seen.push(tail);
    }
    this.pending = seen.flatMap((s) => this.follows.get(s) ?? []);
    return out;
  }

  /** Masks a text on its own, e.g. a line again once a builder's escaping is undone. */
  maskText(text: string): string {
    return this.replace(text, []);
  }

  private replace(text: string, seen: string[]): string {
    let out = text.replace(this.combined, (m) => {
      if (this.follows.has(m)) seen.push(m);
      return '***';
    });
    for (const p of this.separate) out = out.replace(p, '***');
    return out;
  }

  /** Where to cut `text` near `at` without splitting any secret: `at`, or the start of the secret that spans it. */
  safeCut(text: string, at: number): number {
    let cut = at;
    for (const n of this.needles) {
      const from = Math.max(0, cut - n.length + 1);
      const i = text.indexOf(n, from);
      if (i !== -1 && i < cut && i + n.length > cut) cut = i;
    }
    return cut > 0 ? cut : at;
  }
}

/**
 * The forms a build may print a value in besides as-is: single-line ones, and base64 wrapped
 * (one line per row).
 */
function encodedForms(value: string): { forms: string[]; wrapped: string[][] } {
  const bytes = Buffer.from(value);
  const forms: string[] = [];
  const wrapped: string[][] = [];
  // `echo $SECRET | base64` encodes the newline too.
  for (const whole of [bytes, Buffer.concat([bytes, Buffer.from('\n')])]) {
    const b64 = whole.toString('base64');
    forms.push(b64, toBase64Url(b64).replace(/=+$/, ''));
    for (const width of WRAP_COLUMNS) {
      if (b64.length <= width) continue;
      const rows: string[] = [];
      for (let i = 0; i < b64.length; i += width) rows.push(b64.slice(i, i + width));
      wrapped.push(rows);
    }
  }
  for (const inner of base64Inner(bytes)) forms.push(inner, toBase64Url(inner));
  const hex = bytes.toString('hex');
  forms.push(hex, hex.toUpperCase());
  const url = encodeURIComponent(value);
  const strict = url.replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  for (const u of [url, strict]) forms.push(u, u.replace(/%20/g, '+'), u.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()));
  const json = JSON.stringify(value).slice(1, -1);
  forms.push(json, json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  return { forms: forms.filter((f) => f !== value), wrapped };
}

/**
 * The base64 text a value turns into at each of the three byte alignments inside a larger
 * encoded blob, trimmed to the characters that depend on the value alone.
 */
function base64Inner(bytes: Buffer): string[] {
  const forms: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const start = Math.ceil((offset * 4) / 3);
    const end = Math.floor(((offset + bytes.length) * 4) / 3);
    forms.push(encoded.slice(start, end));
  }
  return forms;
}

function toBase64Url(b64: string): string {
  return b64.replace(/\+/g, '-').replace(/\//g, '_');
}

function escapeRegExp(literal: string): string {
  return literal.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** One global regex of these alternatives, or null when they do not compile together. */
function tryRegExp(sources: readonly string[]): RegExp | null {
  try {
    return new RegExp(sources.join('|'), 'g');
  } catch {
    return null;
  }
}
