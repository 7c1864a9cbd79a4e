import { ErrorCode, FleetError } from '../protocol/index.ts';
import { instructions, type Instruction } from './official-bases.ts';

/**
 * RUN flags that would take a step out of the build sandbox, refused before any builder runs,
 * identically on all three:
 * - `--network` other than `default` or `none`: buildah honours `host` (the step then reaches the
 *   worker's loopback, where the fleet's services are); BuildKit refuses it with a bare exit;
 *   kaniko ignores it. The pool's runNetwork decides; a step may only ask for none.
 * - `--security=insecure`: a privileged step (buildah and BuildKit refuse it in their own words).
 * - `--mount` whose `source` climbs above its root with `..`: buildah resolves it against the
 *   host's directories while computing its cache key (walking, say, the host's `/etc` before it
 *   fails), BuildKit clamps it to the context.
 * A variable in those values cannot be judged beforehand: refused too.
 */
export function refusedRunFlag(dockerfile: string): { instruction: Instruction; reason: string } | null {
  for (const instruction of instructions(dockerfile)) {
    const m = /^RUN\s+(.*)$/is.exec(instruction.text);
    if (m?.[1] === undefined) continue;
    for (const flag of splitFlags(m[1]).flags) {
      const reason = flagReason(flag);
      if (reason !== null) return { instruction, reason };
    }
  }
  return null;
}

/** The same, as the error a build gets: `E_DOCKERFILE_INVALID` naming the line (or the base's trigger). */
export function runFlagRefusal(dockerfile: string, where: (i: Instruction) => string = (i) => `at Dockerfile line ${i.line} (${i.text})`): FleetError | null {
  const refused = refusedRunFlag(dockerfile);
  if (refused === null) return null;
  return new FleetError(ErrorCode.E_DOCKERFILE_INVALID, `RUN flag refused ${where(refused.instruction)}: ${refused.reason}`, { step: refused.instruction.text });
}

/** One `RUN --mount=…`: its type (`bind` when it names none, as in Docker) and its options. */
export interface RunMount {
  instruction: Instruction;
  type: string;
  options: Map<string, string>;
}

/** Every `RUN --mount` of a Dockerfile, in order. */
export function runMounts(dockerfile: string): RunMount[] {
  const found: RunMount[] = [];
  for (const instruction of instructions(dockerfile)) {
    const m = /^RUN\s+(.*)$/is.exec(instruction.text);
    if (m?.[1] === undefined) continue;
    for (const flag of splitFlags(m[1]).flags) {
      if (flag.name !== 'mount' || flag.value === '') continue;
      const options = new Map<string, string>();
      for (const option of flag.value.split(',')) {
        const [key = '', ...value] = option.split('=');
        options.set(key.trim().toLowerCase(), value.join('='));
      }
      found.push({ instruction, type: (options.get('type') ?? 'bind').toLowerCase(), options });
    }
  }
  return found;
}

/** One leading `--name[=value]` of an instruction: its lowercased name without the dashes, and its value (quotes dropped). */
export interface LeadingFlag {
  name: string;
  value: string;
}

const FLAG = /^--(?:[^\s"']+|"[^"]*"|'[^']*')+/;

/** The flags an instruction's operands start with (a RUN's before its command), and the operands after them. */
export function splitFlags(operands: string): { flags: LeadingFlag[]; rest: string } {
  const flags: LeadingFlag[] = [];
  let rest = operands.trimStart();
  for (let m = FLAG.exec(rest); m !== null; m = FLAG.exec(rest)) {
    const word = m[0].replace(/["']/g, '');
    const eq = word.indexOf('=');
    flags.push(eq < 0 ? { name: word.slice(2).toLowerCase(), value: '' } : { name: word.slice(2, eq).toLowerCase(), value: word.slice(eq + 1) });
    rest = rest.slice(m[0].length).trimStart();
  }
  return { flags, rest };
}

function flagReason({ name, value }: LeadingFlag): string | null {
  if (name === 'network' && !['default', 'none'].includes(value.toLowerCase())) {
    return `--network=${value}: RUN steps run in the pool's sandboxed network, never the worker's; a step may ask for none`;
  }
  if (name === 'security' && value.toLowerCase() !== 'sandbox') return `--security=${value}: no step runs privileged`;
  if (name === 'mount') {
    for (const option of value.split(',')) {
      const [key = '', ...v] = option.split('=');
      const path = v.join('=');
      if (!['source', 'src'].includes(key.toLowerCase())) continue;
      if (path.includes('$')) return `--mount ${key}=${path}: a variable in a mount's source cannot be checked beforehand`;
      if (climbsAbove(path)) return `--mount ${key}=${path}: the source leaves its root (the context, a stage or an image)`;
    }
  }
  return null;
}

/** Whether a relative path's `..` segments climb above where it starts. */
function climbsAbove(path: string): boolean {
  let depth = 0;
  for (const segment of path.split('/')) {
    if (segment === '..') depth--;
    else if (segment !== '' && segment !== '.') depth++;
    if (depth < 0) return true;
  }
  return false;
}
