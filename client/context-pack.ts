import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, readFile, readdir, stat } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import ignore from 'ignore';
import * as tar from 'tar';
import { ErrorCode, FleetError } from '../protocol/index.ts';

export interface PackedContext {
  file: string;
  digest: string;
  bytes: number;
  entries: number;
}

/**
 * Packs a build context as a reproducible tar.gz (sorted entries, zero mtimes, no owners), so the
 * same files always give the same sha256 and are uploaded once. Honours `.dockerignore`; the
 * Dockerfile and `.dockerignore` themselves always travel.
 */
/** `dockerfile` null: a standard build, whose Dockerfile the platform renders. */
export async function packContext(dir: string, dockerfile: string | null, outFile: string): Promise<PackedContext> {
  const root = await stat(dir).catch(() => null);
  if (root === null || !root.isDirectory()) throw new FleetError(ErrorCode.E_INVALID_REQUEST, `context ${dir} is not a directory`);
  const rules = ignore();
  const ignoreFile = await readFile(join(dir, '.dockerignore'), 'utf8').catch(() => '');
  rules.add(ignoreFile);
  const keep = new Set(dockerfile === null ? ['.dockerignore'] : [posix.normalize(dockerfile), '.dockerignore']);
  const files: string[] = [];
  const walk = async (abs: string): Promise<void> => {
    for (const name of (await readdir(abs)).sort()) {
      const full = join(abs, name);
      const rel = relative(dir, full).split('\\').join('/');
      const info = await lstat(full);
      const asDir = info.isDirectory() ? `${rel}/` : rel;
      if (!keep.has(rel) && rules.ignores(asDir)) continue;
      // Directories travel as entries of their own (noDirRecurse): an empty one (`COPY cache/ …`)
      // and a directory's mode reach the builder as they would from a local context.
      files.push(rel);
      if (info.isDirectory()) await walk(full);
    }
  };
  await walk(dir);
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
