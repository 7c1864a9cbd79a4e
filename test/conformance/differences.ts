import type { BuilderKind } from '../../protocol/index.ts';

/**
 * Where a builder really differs on a corpus Dockerfile, listed here and nowhere else (docs/builders.md
 * has the same list for people). The corpus run marks a cell "documented" when every aspect in
 * which that builder differs is covered by an entry for it; an entry that no longer happens is
 * reported as stale, so this list cannot outlive the difference.
 */
export interface DocumentedDifference {
  corpus: string;
  builder: BuilderKind;
  /**
   * Which aspects differ: `outcome`, `code`, `exitCode`, `tree`, `missing`, or `config.<Field>`; an aspect
   * matches an entry when it equals one of these or starts with it followed by a dot.
   */
  aspects: readonly string[];
  /** `builder`: the builder behaves differently (upstream); `taxonomy-gap`: the fleet maps its failure to another code */
  kind: 'builder' | 'taxonomy-gap';
  what: string;
  /** the upstream issue, or for a taxonomy gap the fleet issue that covers it */
  upstream: string;
}

export const DOCUMENTED_DIFFERENCES: readonly DocumentedDifference[] = [];

export function documentedFor(corpus: string, builder: BuilderKind, aspect: string): DocumentedDifference | undefined {
  return DOCUMENTED_DIFFERENCES.find((d) => d.corpus === corpus && d.builder === builder && d.aspects.some((a) => aspect === a || aspect.startsWith(`${a}.`)));
}
