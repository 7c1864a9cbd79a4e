import { posix } from 'node:path';
import { ErrorCode, FleetError } from '../protocol/index.ts';

// `.dockerignore` as Docker and BuildKit read it (moby/patternmatcher), not as git reads a
// `.gitignore`: a pattern is matched against the path from the context's root and against each
// of its parent directories (`*.log` is the root's logs only, `**/*.log` every one), and the last
// pattern that matches decides, so `!src` brings back a directory, and everything under it, that
// `*` excluded.
export class DockerIgnore {
  private constructor(private readonly patterns: readonly Pattern[]) {}

  /** Reads an ignore file's text; a pattern that cannot be compiled is refused, naming it. */
  static parse(text: string, file = '.dockerignore'): DockerIgnore {
    const patterns: Pattern[] = [];
    for (const [i, raw] of text.replace(/^\uFEFF/, '').split(/\r?\n/).entries()) {
      if (raw.startsWith('#')) continue;
      let line = raw.trim();
      if (line === '') continue;
      const exclusion = line.startsWith('!');
      if (exclusion) line = line.slice(1).trim();
      if (line === '') {
        throw new FleetError(ErrorCode.E_INVALID_REQUEST, `${file} line ${i + 1}: "!" alone is not a pattern`, { issues: [{ path: file, message: `line ${i + 1}: "!" alone is not a pattern` }] });
      }
      let cleaned = clean(line);
      if (cleaned.length > 1 && cleaned.startsWith('/')) cleaned = cleaned.slice(1);
      try {
        patterns.push({ exclusion, matches: compile(cleaned) });
      } catch {
        throw new FleetError(ErrorCode.E_INVALID_REQUEST, `${file} line ${i + 1}: "${line}" is not a valid pattern`, { issues: [{ path: file, message: `line ${i + 1}: not a valid pattern` }] });
      }
    }
    return new DockerIgnore(patterns);
  }

  /** Whether any pattern re-includes (`!`): an excluded directory may then still hold included files. */
  get hasExclusions(): boolean {
    return this.patterns.some((p) => p.exclusion);
  }

  /** Whether a path (relative to the context's root, `/`-separated) is left out. */
  ignores(path: string): boolean {
    const file = clean(path);
    if (file === '.') return false;
    const parents = file.split('/').slice(0, -1);
    let matched = false;
    for (const pattern of this.patterns) {
      // a pattern that cannot change the outcome is skipped, as patternmatcher skips it
      if (pattern.exclusion !== matched) continue;
      let match = pattern.matches(file);
      for (let i = 0; !match && i < parents.length; i++) match = pattern.matches(parents.slice(0, i + 1).join('/'));
      if (match) matched = !pattern.exclusion;
    }
    return matched;
  }
}

interface Pattern {
  exclusion: boolean;
  matches: (path: string) => boolean;
}

/** Go's filepath.Clean for `/`-separated paths: no `.`, `..` resolved, no trailing or doubled slash. */
function clean(path: string): string {
  const normalized = posix.normalize(path);
  const trimmed = normalized.length > 1 ? normalized.replace(/\/+$/, '') : normalized;
  return trimmed === '' ? '.' : trimmed;
}

/** patternmatcher's characters escaped in its regular expression; others pass through as they are. */
const ESCAPED = new Set([...'.+()|{}$']);

// patternmatcher's compile: an exact, prefix (`dir/**`), suffix (`**/name`) or regular-expression match.
function compile(pattern: string): (path: string) => boolean {
  let re = '^';
  let type: 'exact' | 'prefix' | 'suffix' | 'regexp' = 'exact';
  const chars = [...pattern];
  for (let at = 0, i = 0; at < chars.length; i++) {
    const ch = chars[at++] ?? '';
    if (ch === '*') {
      if (chars[at] === '*') {
        at++;
        if (chars[at] === '/') at++;
        if (at >= chars.length) {
          if (type === 'exact') type = 'prefix';
          else {
            re += '.*';
            type = 'regexp';
          }
        } else {
          re += '(.*/)?';
          type = 'regexp';
        }
        if (i === 0) type = 'suffix';
      } else {
        re += '[^/]*';
        type = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      type = 'regexp';
    } else if (ESCAPED.has(ch)) {
      re += `\\${ch}`;
    } else if (ch === '\\') {
      if (at < chars.length) {
        re += `\\${chars[at++] ?? ''}`;
        type = 'regexp';
      } else {
        re += '\\\\';
      }
    } else if (ch === '[' || ch === ']') {
      re += ch;
      type = 'regexp';
    } else {
      re += ch;
    }
  }
  switch (type) {
    case 'exact':
      return (path) => path === pattern;
    case 'prefix': {
      const prefix = pattern.slice(0, -2);
      return (path) => path.startsWith(prefix);
    }
    case 'suffix': {
      const suffix = pattern.slice(2);
      return (path) => path.endsWith(suffix) || (suffix.startsWith('/') && path === suffix.slice(1));
    }
    case 'regexp': {
      const compiled = new RegExp(`${re}$`);
      return (path) => compiled.test(path);
    }
  }
}
