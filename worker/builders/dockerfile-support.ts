import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { instructions, type Instruction } from '../official-bases.ts';
import { runMounts, splitFlags, type LeadingFlag } from '../run-flags.ts';

/**
 * Dockerfile features a builder does not have, refused before anything runs with the line and
 * what to do, instead of a build that ignores them and produces another image (the excluded files
 * copied, a tree flattened, a step without its files) or fails with the builder's own words. What
 * differs otherwise is listed in the conformance corpus's documented differences.
 */
export function unsupportedFeature(dockerfile: string, builder: string): FleetError | null {
  const refusals = builder === 'kaniko' ? KANIKO : builder === 'buildah' ? BUILDAH : [];
  for (const instruction of instructions(dockerfile)) {
    for (const refuse of refusals) {
      const reason = refuse(instruction);
      if (reason !== null) {
        return new FleetError(ErrorCode.E_DOCKERFILE_INVALID, `${builder} cannot build Dockerfile line ${instruction.line} (${instruction.text}): ${reason}`, { step: instruction.text });
      }
    }
  }
  return null;
}

type Refusal = (instruction: Instruction) => string | null;

interface CopyLike {
  flags: LeadingFlag[];
  sources: string[];
}

/** A COPY or ADD: its flags and its sources (the last operand is the destination). */
function copyLike(instruction: Instruction): CopyLike | null {
  const m = /^(?:COPY|ADD)\s+(.*)$/is.exec(instruction.text);
  if (m?.[1] === undefined) return null;
  const { flags, rest } = splitFlags(m[1]);
  const operands = jsonOperands(rest) ?? rest.split(/\s+/).filter((w) => w !== '');
  return { flags, sources: operands.slice(0, -1) };
}

function jsonOperands(rest: string): string[] | null {
  if (!rest.startsWith('[')) return null;
  try {
    const parsed: unknown = JSON.parse(rest);
    return Array.isArray(parsed) && parsed.every((p) => typeof p === 'string') ? parsed : null;
  } catch {
    return null;
  }
}

const OCTAL = /^[0-7]{3,4}$/;

const symbolicChmod: Refusal = (instruction) => {
  const chmod = copyLike(instruction)?.flags.find((f) => f.name === 'chmod');
  return chmod === undefined || OCTAL.test(chmod.value) || chmod.value.includes('$') ? null : `--chmod=${chmod.value}: only an octal mode (e.g. --chmod=0755) is taken here; symbolic modes build on BuildKit only`;
};

/** `EXPOSE 8000-8002`: BuildKit writes each port; buildah and kaniko write the range as one key. */
const exposedRange: Refusal = (instruction) => {
  const m = /^EXPOSE\s+(.*)$/is.exec(instruction.text);
  const range = m?.[1]?.split(/\s+/).find((p) => /^\d+-\d+(?:\/\w+)?$/.test(p));
  return range === undefined
    ? null
    : `EXPOSE ${range}: the image config would name the range as one port ("${range.includes('/') ? range : `${range}/tcp`}"), which Docker 29 refuses to pull (moby/moby#52553); list the ports one by one, or build on BuildKit, which does`;
};

/** `RUN --mount=type=secret,env=NAME`: the secret as an environment variable (Dockerfile 1.10). */
const secretAsEnv: Refusal = (instruction) => {
  const secret = runMounts(instruction.text).find((m) => m.type === 'secret' && m.options.has('env'));
  const id = secret?.options.get('id') ?? '';
  return secret === undefined
    ? null
    : `RUN --mount=type=secret,env=${secret.options.get('env') ?? ''}: a secret only comes as a file here (the step would run without the variable); read it from ${secret.options.get('target') ?? `/run/secrets/${id}`} in the step, or build on BuildKit`;
};

const KANIKO: readonly Refusal[] = [
  (instruction) => {
    const bind = runMounts(instruction.text).find((m) => m.type === 'bind' && m.options.has('from'));
    return bind === undefined ? null : `RUN --mount=type=bind,from=${bind.options.get('from') ?? ''}: kaniko binds only the build context (the fleet's executor copies it in for the step); copy from the stage with COPY --from, or build on the buildah or BuildKit pool`;
  },
  (instruction) => {
    const copy = copyLike(instruction);
    if (copy?.flags.some((f) => f.name === 'exclude') === true) return '--exclude: kaniko ignores it and would copy the excluded files; build on the buildah or BuildKit pool';
    if (copy?.flags.some((f) => f.name === 'parents') === true) return '--parents: kaniko ignores it and would flatten the tree; build on the buildah or BuildKit pool';
    return null;
  },
  symbolicChmod,
  exposedRange,
  secretAsEnv,
];

/** A COPY source that is the whole context (or a stage's whole root): its paths are the context's. */
const WHOLE = new Set(['.', './', '/']);

const BUILDAH: readonly Refusal[] = [
  (instruction) => {
    const copy = copyLike(instruction);
    if (copy === null || copy.sources.every((s) => WHOLE.has(s))) return null;
    const relative = copy.flags.find((f) => f.name === 'exclude' && !f.value.startsWith('**/'));
    return relative === undefined
      ? null
      : `--exclude=${relative.value}: buildah matches it from the context's root, BuildKit from the source (${copy.sources.join(' ')}), so the two would copy different files; write --exclude=**/${relative.value}, which both match alike`;
  },
  symbolicChmod,
  exposedRange,
  secretAsEnv,
];
