import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, readFile, readdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import { DockerIgnore } from './dockerignore.ts';

export interface PackedContext {
  file: string;
  digest: string;
  bytes: number;
  entries: number;
}

/**
 * Packs a build context as a reproducible tar.gz (sorted entries, zero mtimes, no owners), so the
 * same files always give the same sha256 and are uploaded once. Honours `.dockerignore` (or the
 * Dockerfile's own `<Dockerfile>.dockerignore`) as Docker does (dockerignore.ts); the Dockerfile and
 * the ignore file themselves always travel.
 */
/** `dockerfile` null: a standard build, whose Dockerfile the platform renders. */
export async function packContext(dir: string, dockerfile: string | null, outFile: string): Promise<PackedContext> {
  const root = await stat(dir).catch(() => null);
  if (root === null || !root.isDirectory()) throw new FleetError(ErrorCode.E_INVALID_REQUEST, `context ${dir} is not a directory`);
  // BuildKit's Dockerfile-specific ignore file (`app/Dockerfile.prod.dockerignore`) wins over the root one.
  const specific = dockerfile === null ? null : `${posix.normalize(dockerfile)}.dockerignore`;
  const specificText = specific === null ? null : await readFile(join(dir, specific), 'utf8').catch(() => null);
  const ignoreFile = specific !== null && specificText !== null ? specific : '.dockerignore';
  const rules = DockerIgnore.parse(specificText ?? (await readFile(join(dir, '.dockerignore'), 'utf8').catch(() => '')), ignoreFile);
  const keep = new Set(['.dockerignore', ...(dockerfile === null ? [] : [posix.normalize(dockerfile)]), ...(ignoreFile === '.dockerignore' ? [] : [ignoreFile])]);
  const files: string[] = [];
  /** Adds what the directory holds that is not left out; whether it added anything. */
  const walk = async (abs: string, rel: string): Promise<boolean> => {
    let added = false;
    for (const name of (await readdir(abs)).sort()) {
      const full = join(abs, name);
      const path = rel === '' ? name : `${rel}/${name}`;
      const info = await lstat(full);
      const excluded = !keep.has(path) && rules.ignores(path);
      if (!info.isDirectory()) {
        if (!excluded) files.push(path);
        added ||= !excluded;
        continue;
      }
      // An excluded directory is still walked when a pattern may bring back something under it
      // (`*` then `!src/app.js`), or when the Dockerfile is there.
      if (excluded && !rules.hasExclusions && ![...keep].some((k) => k.startsWith(`${path}/`))) continue;
      // Directories travel as entries of their own (noDirRecurse): an empty one (`COPY cache/ …`)
      // and a directory's mode reach the builder as they would from a local context.
      const inner = await walk(full, path);
      if (!excluded || inner) files.push(path);
      added ||= !excluded || inner;
    }
    return added;
  };
  await walk(dir, '');
  if (dockerfile !== null && !files.includes(posix.normalize(dockerfile))) {
    throw new FleetError(ErrorCode.E_INVALID_REQUEST, `no ${dockerfile} in context ${dir}`, {
      issues: [{ path: 'dockerfile', message: 'not found in the context' }],
    });
  }
  files.sort();
  const hash = createHash('sha256');
  let bytes = 0;
  const archive = tar.c({ cwd: dir, gzip: true, portable: true, noDirRecurse: true, mtime: new Date(0), follow: false }, files);
  archive.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  await pipeline(archive, createWriteStream(outFile, { mode: 0o600 }));
  return { file: outFile, digest: `sha256:${hash.digest('hex')}`, bytes, entries: files.length };
}
