import { readFileSync } from 'node:fs';
import { ErrorCode, FleetError } from '../protocol/index.ts';

/** scripts/versions.env is the one place versions are pinned; the bootstrap and this code read it. */
const text = readFileSync(new URL('../scripts/versions.env', import.meta.url), 'utf8');

function pinned(name: string): string {
  const value = new RegExp(`^${name}=(\\S+)$`, 'm').exec(text)?.[1];
  if (value === undefined) throw new FleetError(ErrorCode.E_INTERNAL, `scripts/versions.env names no ${name}`);
  return value;
}

export const OFFICIAL_IMAGES_VERSION = pinned('OFFICIAL_IMAGES_VERSION');
/** the fleet's build of kaniko (its version with the fleet's patches) */
export const KANIKO_BUILD = pinned('KANIKO_BUILD');
/** the kaniko builder's image, published and signed with the platform images */
export const KANIKO_IMAGE = `platform/kaniko:${KANIKO_BUILD}`;
/** kube-apiserver of the server-side dry-run check (scripts/k8s-tools --apiserver builds and caches it) */
export const KUBERNETES_VERSION = pinned('KUBERNETES_VERSION');
