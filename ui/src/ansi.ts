/**
 * ANSI SGR colours into styled runs. The result is only ever put into the page as text nodes with
 * class names (never markup), so a log line cannot inject anything.
 */

export interface Run {
  text: string;
  /** space-separated class names: `fg-N`, `bg-N` (0–15), `b`, `i`, `u`, `dim` */
  cls: string;
}

const ESC = /\x1b\[([0-9;]*)([A-Za-z])/g;

interface Style {
  fg: number | null;
  bg: number | null;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
}

const plain = (): Style => ({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false });

function classOf(s: Style): string {
  const c: string[] = [];
  if (s.fg !== null) c.push(`fg-${s.fg}`);
  if (s.bg !== null) c.push(`bg-${s.bg}`);
  if (s.bold) c.push('b');
  if (s.dim) c.push('dim');
  if (s.italic) c.push('i');
  if (s.underline) c.push('u');
  return c.join(' ');
}

function apply(style: Style, params: string): void {
  const codes = params === '' ? [0] : params.split(';').map((p) => Number(p));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i] ?? 0;
    if (c === 0) Object.assign(style, plain());
    else if (c === 1) style.bold = true;
    else if (c === 2) style.dim = true;
    else if (c === 3) style.italic = true;
    else if (c === 4) style.underline = true;
    else if (c === 22) style.bold = style.dim = false;
    else if (c === 23) style.italic = false;
    else if (c === 24) style.underline = false;
    else if (c >= 30 && c <= 37) style.fg = c - 30;
    else if (c >= 90 && c <= 97) style.fg = c - 90 + 8;
    else if (c === 39) style.fg = null;
    else if (c >= 40 && c <= 47) style.bg = c - 40;
    else if (c >= 100 && c <= 107) style.bg = c - 100 + 8;
    else if (c === 49) style.bg = null;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) {
      // 256 colours: the first 16 map onto the palette, the rest onto their nearest basic hue
      const n = codes[i + 2] ?? 0;
      const idx = n < 16 ? n : 7;
      if (c === 38) style.fg = idx;
      else style.bg = idx;
      i += 2;
    } else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4; // true colour: ignored
  }
}

/** Splits one line into runs; lines without an escape (nearly all) cost one regex test. */
export function parseAnsi(line: string): Run[] {
  if (!line.includes('\x1b')) return [{ text: line, cls: '' }];
  const runs: Run[] = [];
  const style = plain();
  let last = 0;
  ESC.lastIndex = 0;
  for (let m = ESC.exec(line); m !== null; m = ESC.exec(line)) {
    if (m.index > last) runs.push({ text: line.slice(last, m.index), cls: classOf(style) });
    if (m[2] === 'm') apply(style, m[1] ?? '');
    last = ESC.lastIndex;
  }
  if (last < line.length) runs.push({ text: line.slice(last), cls: classOf(style) });
  return runs;
}

/** The line as plain text (for search and download). */
export function stripAnsi(line: string): string {
  return line.includes('\x1b') ? line.replace(ESC, '') : line;
}
