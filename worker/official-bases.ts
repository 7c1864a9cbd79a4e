import { ErrorCode, FleetError } from '../protocol/index.ts';
import type { Manifest, RegistryClient } from '../adapters/registry-client.ts';
import { verifyImageSignature } from '../signing/sigstore.ts';
import type { BaseResolver } from './base-resolver.ts';

/** Platform namespaces whose images must carry the platform's signature before a build uses them. */
export const SIGNED_NAMESPACES = ['official/', 'platform/'];

export interface FromLine {
  /** the image text as written, e.g. `${FLEET_BUILD_BASE}` */
  raw: string;
  /** after build-arg expansion */
  image: string;
  /** 1-based line of the Dockerfile the FROM starts on */
  line: number;
}

/** One instruction: its logical text (continuations joined) and the line it starts on. */
export interface Instruction {
  text: string;
  line: number;
}

/**
 * The Dockerfile's instructions with `\` continuations joined, comments, blank lines and heredoc
 * bodies (`RUN <<EOF` … `EOF`) left out, each with the 1-based line it starts on (what the
 * builders and the user call "line N").
 */
export function instructions(dockerfile: string): Instruction[] {
  const found: Instruction[] = [];
  let current: Instruction | null = null;
  /** heredoc terminators still to come, in order */
  const heredocs: string[] = [];
  for (const [i, physical] of dockerfile.split(/\r?\n/).entries()) {
    if (heredocs.length > 0) {
      const [end] = heredocs;
      if (physical.replace(/^\t+/, '') === end) heredocs.shift();
      continue;
    }
    // Comment lines are dropped, also inside a continued instruction, as the builders do.
    if (/^\s*#/.test(physical)) continue;
    const continued = /\\\s*$/.test(physical);
    const part = continued ? physical.replace(/\\\s*$/, '') : physical;
    if (current === null) {
      if (part.trim() === '') continue;
      current = { text: part.trim(), line: i + 1 };
    } else {
      current.text = `${current.text} ${part.trim()}`.trim();
    }
    if (!continued) {
      found.push(current);
      for (const m of current.text.matchAll(/<<-?(["']?)([A-Za-z_][A-Za-z0-9_]*)\1/g)) if (m[2] !== undefined) heredocs.push(m[2]);
      current = null;
    }
  }
  if (current !== null) found.push(current);
  return found;
}

/** The names of a Dockerfile's stages (`FROM … AS name`), lower-cased: the frontend matches them without case. */
export function stageNames(dockerfile: string): string[] {
  return instructions(dockerfile).flatMap((i) => /^FROM\s.*\sAS\s+(\S+)\s*$/i.exec(i.text)?.[1]?.toLowerCase() ?? []);
}

/**
 * Reads the images a Dockerfile's FROM lines name, with build args expanded as the builders do:
 * only ARGs declared before the first FROM reach a FROM, their defaults (quoted or not)
 * overridden by the build's args, `${X}`, `$X`, `${X:-default}` and `${X:+alt}` expanded. Flags
 * (`--platform=…`) are skipped; a FROM naming an earlier stage (`AS`, any case) or `scratch` is no
 * image.
 */
export function fromImages(dockerfile: string, buildArgs: Readonly<Record<string, string>>): FromLine[] {
  const args: Record<string, string> = {};
  const stages = new Set<string>();
  const found: FromLine[] = [];
  let seenFrom = false;
  for (const { text, line } of instructions(dockerfile)) {
    const [keyword = '', ...rest] = words(text);
    if (/^ARG$/i.test(keyword)) {
      if (seenFrom) continue;
      for (const decl of rest) {
        const eq = decl.indexOf('=');
        const name = eq < 0 ? decl : decl.slice(0, eq);
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
        args[name] = buildArgs[name] ?? (eq < 0 ? '' : expand(stripQuotes(decl.slice(eq + 1)), args));
      }
      continue;
    }
    if (!/^FROM$/i.test(keyword)) continue;
    seenFrom = true;
    const operands = rest.filter((w) => !w.startsWith('--'));
    const raw = operands[0];
    if (raw === undefined) continue;
    const image = expand(raw, args);
    if (!stages.has(image.toLowerCase()) && image.toLowerCase() !== 'scratch') found.push({ raw, image, line });
    if (operands.length >= 3 && operands[1]?.toLowerCase() === 'as' && operands[2] !== undefined) stages.add(operands[2].toLowerCase());
  }
  return found;
}

/** Words of an instruction, a quoted word kept whole (quotes stay, for stripQuotes). */
function words(text: string): string[] {
  return text.match(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g) ?? [];
}

/** `${X}`, `$X`, `${X:-default}`, `${X:+alt}` with the args known so far; unknown ones are empty. */
function expand(text: string, args: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, braced: string | undefined, op: string | undefined, word: string | undefined, bare: string | undefined) => {
    const value = args[braced ?? bare ?? ''] ?? '';
    if (op === '-') return value === '' ? (word ?? '') : value;
    if (op === '+') return value === '' ? '' : (word ?? '');
    return value;
  });
}

function stripQuotes(v: string): string {
  return v.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
}

/**
 * Verifies the platform signature of every official (and platform service) image the build pulls
 * from `registry`, before the builder sees any of them; an unsigned or wrongly signed one fails
 * the build with E_BASE_UNSIGNED. Each manifest comes from the build's base resolver, so an image
 * the base check already read costs no second read. A FROM that is exactly one build arg (the
 * standard template's FLEET_* bases) is pinned to the verified digest, so the builder pulls what
 * was verified. Returns the build args to use.
 */
export async function verifyOfficialBases(
  dockerfile: string,
  buildArgs: Readonly<Record<string, string>>,
  registry: RegistryClient,
  publicKeyPem: string,
  bases: BaseResolver,
  copiedFrom: readonly string[] = [],
): Promise<{ buildArgs: Record<string, string>; verified: string[] }> {
  const pinned: Record<string, string> = { ...buildArgs };
  const verified: string[] = [];
  const host = registry.endpoint.host;
  // An official image a COPY --from or RUN --mount=from pulls is as much a base as a FROM: its
  // files land in the image, so its signature is checked the same way (it is never a build arg).
  const pulled = [...fromImages(dockerfile, buildArgs), ...copiedFrom.map((image) => ({ raw: image, image }))];
  for (const from of pulled) {
    if (!from.image.startsWith(`${host}/`)) continue;
    const path = from.image.slice(host.length + 1);
    if (!SIGNED_NAMESPACES.some((ns) => path.startsWith(ns))) continue;
    const at = path.indexOf('@');
    const colon = path.lastIndexOf(':');
    const repository = at >= 0 ? path.slice(0, at) : colon >= 0 ? path.slice(0, colon) : path;
    const reference = at >= 0 ? path.slice(at + 1) : colon >= 0 ? path.slice(colon + 1) : 'latest';
    const digest = await signedDigest(registry, repository, reference, await bases.manifest(from.image), publicKeyPem);
    if (verified.includes(`${from.image} = ${digest}`)) continue;
    verified.push(`${from.image} = ${digest}`);
    const whole = /^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$/.exec(from.raw);
    if (whole?.[1] !== undefined && whole[1].startsWith('FLEET_') && whole[1] in pinned) pinned[whole[1]] = `${host}/${repository}@${digest}`;
  }
  return { buildArgs: pinned, verified };
}

/**
 * The manifest digest of a platform image, once its platform signature checks out; otherwise
 * E_BASE_UNSIGNED naming the image and why.
 */
export async function verifiedDigest(
  registry: RegistryClient,
  repository: string,
  reference: string,
  publicKeyPem: string,
  signal?: AbortSignal,
): Promise<string> {
  return signedDigest(registry, repository, reference, await registry.manifest(repository, reference, signal), publicKeyPem);
}

/** `manifest`'s digest (the one `repository:reference` answered with), once a platform signature on it verifies. */
async function signedDigest(registry: RegistryClient, repository: string, reference: string, manifest: Manifest | null, publicKeyPem: string): Promise<string> {
  const image = `${registry.endpoint.host}/${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
  if (manifest === null) throw new FleetError(ErrorCode.E_BASE_UNSIGNED, `platform image ${image} does not exist in ${registry.endpoint.host}`);
  const check = await verifyImageSignature(registry, repository, manifest.digest, publicKeyPem);
  if (!check.ok) throw new FleetError(ErrorCode.E_BASE_UNSIGNED, `refusing to use ${image}: ${check.reason}`);
  return manifest.digest;
}
