import { GateCode } from '../../protocol/index.ts';
import type { Image } from './image-reader.ts';

/** An official image as the registry has it now: name, manifest digest, layer diff_ids. */
export interface OfficialImage {
  name: string;
  repository: string;
  digest: string;
  diffIds: readonly string[];
}

export type OfficialBaseFinding =
  | { ok: true; code: typeof GateCode.OFFICIAL_BASE_OK; base: OfficialImage; reason: string }
  | { ok: false; code: typeof GateCode.OFFICIAL_BASE_DIVERGES; reason: string };

/**
 * Whether the image derives from an official image: that image's config `rootfs.diff_ids` must be
 * the leading diff_ids of this one. diff_ids are digests of the uncompressed layers, so a base
 * recompressed on push still matches; compressed blob digests would not. The longest matching
 * official image wins (jdk17 over jre17 over base). A mismatch names the first diverging layer
 * against the closest official image.
 */
export function checkOfficialBase(image: Image, officials: readonly OfficialImage[]): OfficialBaseFinding {
  const ids = image.config.rootfs.diff_ids;
  let best: OfficialImage | null = null;
  let closest: { base: OfficialImage; common: number } | null = null;
  for (const base of officials) {
    const common = commonPrefix(ids, base.diffIds);
    if (common === base.diffIds.length && base.diffIds.length > 0 && (best === null || base.diffIds.length > best.diffIds.length)) best = base;
    if (closest === null || common > closest.common) closest = { base, common };
  }
  if (best !== null) {
    return { ok: true, code: GateCode.OFFICIAL_BASE_OK, base: best, reason: `derives from ${best.name} (${best.diffIds.length} leading layer(s) match by diff_id)` };
  }
  if (closest === null) return { ok: false, code: GateCode.OFFICIAL_BASE_DIVERGES, reason: 'no official base is configured' };
  const at = closest.common;
  const theirs = closest.base.diffIds[at] ?? '(none)';
  const ours = ids[at] ?? '(none: the image has fewer layers)';
  return {
    ok: false,
    code: GateCode.OFFICIAL_BASE_DIVERGES,
    reason: `does not derive from an official base: layer ${at + 1} is ${short(ours)}, closest official ${closest.base.name} has ${short(theirs)} there`,
  };
}

function commonPrefix(a: readonly string[], b: readonly string[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function short(diffId: string): string {
  return diffId.startsWith('sha256:') ? `${diffId.slice(0, 19)}…` : diffId;
}
