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
 * A line costs one Wu-Manber pass for all the literals (a PEM key alone makes hundreds, far too
 * many for a regex alternation, which tries each one at every position) and one regex for the
 * patterns, whatever the number of secrets.
 */
export class LogMasker {
  private readonly literals: LiteralSet;
  /** declared values too short for `literals`, longest first */
  private readonly short: string[];
  /** value patterns, joinable platform patterns, and declared values too short for `literals` */
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
    const short = new Set<string>();
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
        if (v.length >= MIN_SECRET && v.length < MIN_FRAGMENT) short.add(v);
        add(v);
        const { forms, wrapped } = encodedForms(v);
        forms.forEach(add);
        wrapped.forEach(addLines);
      }
      const lines = value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
      if (lines.length < 2) continue;
      addLines(lines);
      for (const line of lines) if (line.length >= MIN_FRAGMENT) encodedForms(line).forms.forEach(add);
    }
    this.literals = new LiteralSet([...all]);
    // Longest first: the alternation takes the first that matches, so a value that contains
    // another is masked whole.
    this.short = [...short].sort((a, b) => b.length - a.length);
    const shared = [...this.short.map(escapeRegExp), ...SECRET_VALUE_PATTERNS.map((p) => p.re.source)];
    const joinable = patterns.filter((p) => p.flags.replace(/[gy]/g, '') === '' && !/\\[1-9]|\\k</.test(p.source));
    const together = tryRegExp([...shared, ...joinable.map((p) => p.source)]);
    this.combined = together ?? new RegExp(shared.join('|'), 'g');
    for (const p of patterns) {
      if (together === null || !joinable.includes(p)) this.separate.push(new RegExp(p.source, p.flags.includes('g') ? p.flags : `${p.flags}g`));
    }
  }

  /** The longest literal: a cut that keeps this many characters together never splits a secret. */
  get longest(): number {
    return Math.max(this.literals.longest, this.short[0]?.length ?? 0);
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
    let out = text;
    const found = this.literals.find(text);
    if (found.length > 0) {
      // Every character any literal covers goes, overlapping matches included.
      let masked = '';
      let from = 0;
      let i = 0;
      while (i < found.length) {
        const first = found[i];
        if (first === undefined) break;
        let end = first.start + first.literal.length;
        for (i++; i < found.length; i++) {
          const next = found[i];
          if (next === undefined || next.start > end) break;
          end = Math.max(end, next.start + next.literal.length);
        }
        masked += `${text.slice(from, first.start)}***`;
        from = end;
      }
      out = masked + text.slice(from);
      for (const { literal } of found) if (this.follows.has(literal)) seen.push(literal);
    }
    out = out.replace(this.combined, '***');
    for (const p of this.separate) out = out.replace(p, '***');
    return out;
  }

  /** Where to cut `text` near `at` without splitting any secret: `at`, or the start of the secret that spans it. */
  safeCut(text: string, at: number): number {
    let cut = at;
    for (;;) {
      // Only a literal starting less than `longest` before the cut can span it.
      const from = Math.max(0, cut - this.longest + 1);
      const starts = this.literals
        .find(text.slice(from, cut + this.longest - 1))
        .map((f) => ({ start: from + f.start, end: from + f.start + f.literal.length }));
      for (const literal of this.short) {
        const i = text.indexOf(literal, Math.max(0, cut - literal.length + 1));
        if (i !== -1) starts.push({ start: i, end: i + literal.length });
      }
      const spanning = starts.filter((s) => s.start < cut && s.end > cut).map((s) => s.start);
      if (spanning.length === 0) return cut > 0 ? cut : at;
      cut = Math.min(...spanning);
    }
  }
}

/** Every literal is at least this long; the scan looks at this much of each. */
const WINDOW = MIN_FRAGMENT;
/** characters per block the shift table is indexed by */
const BLOCK = 3;
const TABLE_SIZE = 1 << 15;
/** how far the window moves past a block no literal's head contains */
const MAX_SHIFT = WINDOW - BLOCK + 1;

function blockHash(text: string, end: number): number {
  return ((text.charCodeAt(end - 2) << 10) ^ (text.charCodeAt(end - 1) << 5) ^ text.charCodeAt(end)) & (TABLE_SIZE - 1);
}

/**
 * Wu-Manber over many literals at once: the last BLOCK characters of an 8-character window say
 * how far the window may move without skipping the head of any literal (usually MAX_SHIFT on
 * ordinary output); only where a head may end are the literals starting there compared. A
 * regex alternation instead tries every literal at every position, and a PEM key alone makes
 * hundreds of them.
 */
class LiteralSet {
  readonly longest: number;
  private readonly shift = new Uint8Array(TABLE_SIZE).fill(MAX_SHIFT);
  /** block hash → the literals whose head ends with such a block */
  private readonly byBlock = new Map<number, string[]>();

  constructor(literals: readonly string[]) {
    this.longest = 0;
    for (const literal of literals) {
      if (literal.length < WINDOW) continue;
      this.longest = Math.max(this.longest, literal.length);
      for (let end = BLOCK - 1; end < WINDOW; end++) {
        const h = blockHash(literal, end);
        this.shift[h] = Math.min(this.shift[h] ?? MAX_SHIFT, WINDOW - 1 - end);
      }
      const h = blockHash(literal, WINDOW - 1);
      this.byBlock.set(h, [...(this.byBlock.get(h) ?? []), literal]);
    }
  }

  /** Every occurrence of every literal (overlapping ones too), by start. */
  find(text: string): { start: number; literal: string }[] {
    const found: { start: number; literal: string }[] = [];
    if (this.byBlock.size === 0) return found;
    const shift = this.shift;
    for (let end = WINDOW - 1; end < text.length; ) {
      const h = blockHash(text, end);
      const s = shift[h] as number;
      if (s > 0) {
        end += s;
        continue;
      }
      const start = end - WINDOW + 1;
      for (const literal of this.byBlock.get(h) ?? []) if (text.startsWith(literal, start)) found.push({ start, literal });
      end += 1;
    }
    return found;
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
