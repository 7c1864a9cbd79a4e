import { BaseName, type BaseImage } from '../../protocol/index.ts';

/** A watchable base: `host/repository:tag`, split. */
export interface BaseRef {
  name: string;
  host: string;
  repository: string;
  tag: string;
}

/**
 * The parts of a FROM name a rebuild can watch, or null: a name pinned by digest never moves,
 * and a name without a registry host (`debian:12`) is not one this fleet resolved.
 */
export function parseBaseName(name: string): BaseRef | null {
  if (!BaseName.safeParse(name).success) return null;
  const slash = name.indexOf('/');
  const colon = name.lastIndexOf(':');
  return { name, host: name.slice(0, slash), repository: name.slice(slash + 1, colon), tag: name.slice(colon + 1) };
}

export const baseNameOf = (host: string, repository: string, tag: string): string => `${host}/${repository}:${tag}`;

/** `official/base:1 sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb…`, for people. */
export function rebuildReason(base: string, from: string, to: string): string {
  const short = (d: string): string => `${d.slice(0, 19)}…`;
  const shown = base.slice(base.indexOf('/') + 1);
  return `${shown} ${short(from)} → ${short(to)}`;
}

/**
 * The bases of a build a rebuild may follow: tag names only, each once, never the build's own
 * output (an image built FROM its own release tag would rebuild itself forever: OpenShift's
 * known loop).
 */
export function followedBases(bases: readonly BaseImage[], host: string, repository: string, tags: readonly string[]): BaseImage[] {
  const own = new Set(tags.map((t) => baseNameOf(host, repository, t)));
  const seen = new Set<string>();
  return bases.filter((b) => {
    if (parseBaseName(b.name) === null || own.has(b.name) || seen.has(b.name)) return false;
    seen.add(b.name);
    return true;
  });
}
