/**
 * Replaces secret values, their base64 forms, and platform-configured patterns with `***`
 * before a line leaves the worker.
 */
export class LogMasker {
  private readonly needles: string[];

  constructor(
    secrets: readonly string[],
    private readonly patterns: readonly RegExp[] = [],
  ) {
    const all = new Set<string>();
    for (const s of secrets) {
      if (s.length < 4) continue; // masking "a" would shred every line and protects nothing
      all.add(s);
      for (const b of base64Forms(s)) all.add(b);
    }
    // Longest first, so a secret that contains another is masked whole.
    this.needles = [...all].sort((a, b) => b.length - a.length);
  }

  /** The longest needle: a cut that keeps this many characters together never splits a secret. */
  get longest(): number {
    return this.needles[0]?.length ?? 0;
  }

  mask(text: string): string {
    let out = text;
    for (const n of this.needles) if (out.includes(n)) out = out.split(n).join('***');
    for (const p of this.patterns) out = out.replace(p, '***');
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
 * The base64 text a secret turns into at each of the three byte alignments inside a larger
 * encoded blob, trimmed to the characters that depend on the secret alone.
 */
function base64Forms(secret: string): string[] {
  const bytes = Buffer.from(secret);
  const forms: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const start = Math.ceil((offset * 4) / 3);
    const end = Math.floor(((offset + bytes.length) * 4) / 3);
    const inner = encoded.slice(start, end);
    if (inner.length >= 8) forms.push(inner);
  }
  return forms;
}
