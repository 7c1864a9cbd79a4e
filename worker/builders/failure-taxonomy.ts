import { readFile } from 'node:fs/promises';
import { ErrorCode, FleetError, type BuilderKind } from '../../protocol/index.ts';
import { fromImages, instructions, type Instruction } from '../official-bases.ts';
import type { ToolRun } from './run-tool.ts';
import type { BuildPlan } from './types.ts';

/**
 * One failure taxonomy for every builder: reads what a failed builder printed (its last lines,
 * as they went to the build log) and names the failure with the same code on buildah, BuildKit
 * and kaniko, in one line that says which Dockerfile line (or step) and the builder's own reason.
 * Pure: the builders hand it their recent output and the Dockerfile text.
 *
 * The builders' wording differs, so each has its own "final error line"; the kinds of failure
 * are then read from that reason with patterns most builders share (Go's net errors, the OCI
 * distribution error codes).
 */

/** How many of a builder's last lines the taxonomy needs: BuildKit prints its Dockerfile excerpt ~10 lines above the error. */
export const RECENT_LINES = 60;

/** What one kind of failure is called in the message, and its code. */
const KINDS = {
  invalid: { code: ErrorCode.E_DOCKERFILE_INVALID, label: 'Dockerfile invalid' },
  copySource: { code: ErrorCode.E_COPY_SOURCE_MISSING, label: 'COPY/ADD source missing' },
  remoteSource: { code: ErrorCode.E_COPY_SOURCE_MISSING, label: 'ADD source could not be fetched' },
  target: { code: ErrorCode.E_TARGET_NOT_FOUND, label: 'stage not found' },
  baseNotFound: { code: ErrorCode.E_BASE_NOT_FOUND, label: 'base image not found' },
  baseUnauthorized: { code: ErrorCode.E_BASE_UNAUTHORIZED, label: 'base image refused' },
  registry: { code: ErrorCode.E_REGISTRY_UNAVAILABLE, label: 'registry unavailable' },
  step: { code: ErrorCode.E_BUILD_STEP_FAILED, label: 'step failed' },
  resources: { code: ErrorCode.E_RESOURCE_LIMIT, label: 'out of resources' },
} as const;
type Kind = keyof typeof KINDS;

/** The line each builder ends a failed build with (its own reason). */
const FINAL_LINE: Record<BuilderKind, RegExp> = {
  // `error: failed to solve: …` (buildctl's last word; everything exits 1)
  buildkit: /^error: failed to solve: (.*)$/,
  // `Error: building at STEP "…": …`, `Error: creating build container: …`
  buildah: /^Error: (.*)$/,
  // `error building image: …` (kaniko's fatal line); `error: …` for logrus errors
  kaniko: /^(?:error building image: |fatal: )(.*)$/,
};

/** `Dockerfile:4` above BuildKit's excerpt of the failing line */
const BUILDKIT_LINE = /^Dockerfile:(\d+)$/;
/** `   4 | >>> COPY missing.txt /missing.txt` */
const BUILDKIT_EXCERPT = /^\s*\d+ \| >>> (.*)$/;
/** the step buildah names: `building at STEP "RUN exit 7": …` */
const BUILDAH_STEP = /^building at STEP "((?:[^"\\]|\\.)*)"/;
/** the instruction kaniko announced last: `RUN make` */
const KANIKO_STEP = /^(?:RUN|COPY|ADD) /;

/** Ordered: the first pattern that matches the reason names the kind. */
const REASONS: readonly { kind: Kind; re: RegExp }[] = [
  { kind: 'resources', re: /no space left on device|disk quota exceeded/i },
  {
    kind: 'invalid',
    re: /dockerfile parse error|unknown instruction|parsing dockerfile|stage \d+ requires a FROM instruction|unknown user error looking up user|unable to find user \S+: no matching entries in passwd file|is not a uid and does not exist on the system|Build error: Unknown instruction|requires (?:at least|exactly) (?:one|two) arguments?|must have two arguments|variable expansion is not supported for --from|destination must be a directory and end (?:in|with) (?:a )?'?\/|could not parse reference: \S*\$/i,
  },
  { kind: 'target', re: /target stage "?[^"\s]*"? could not be found|The target "[^"]*" was not found|is not a valid target build stage|no stage or image found with that name/i },
  { kind: 'step', re: /did not complete successfully: exit code: \d+|exit status \d+|while running runtime: exit status \d+/ },
  { kind: 'copySource', re: /failed to compute cache key: .*: not found|generating checksum for directory "[^"]*" in "[^"]*": lstat .*: no such file or directory|could not add path: lstat .*: no such file or directory|checking on sources .*no such file or directory|failed to get fileinfo for .*no such file or directory|no items matching glob|matched nothing|copier: stat: .*no such file or directory/i },
  // An ADD of a URL the builder could not fetch: the Dockerfile's own source, final (it read as a
  // registry outage and was tried five times). BuildKit talks to no registry here (bases come as
  // layouts), so its cache-key load of a URL is the ADD's; kaniko says so.
  { kind: 'remoteSource', re: /downloading remote source file|failed to load cache key: (?:Get "[a-z][a-z0-9+.-]*:\/\/|invalid response status \d+)/i },
  // Bases: what an outage does not explain is final (a name that does not resolve, a manifest that is not there, a refusal)…
  { kind: 'baseNotFound', re: /no such host|manifest unknown|MANIFEST_UNKNOWN|NAME_UNKNOWN|name unknown|: not found$|failed to resolve source metadata for \S+: .*not found|reading manifest .* not found/i },
  { kind: 'baseUnauthorized', re: /401 Unauthorized|403 Forbidden|\bunauthorized\b|UNAUTHORIZED|authentication required|insufficient_scope|requested access to the resource is denied|\bDENIED\b/i },
  // …while a registry that is down, slow or busy may answer next time.
  { kind: 'registry', re: /connection refused|i\/o timeout|timeout|connection reset|EOF|\b5\d\d\b|429|Too Many Requests|TOOMANYREQUESTS|temporary failure in name resolution|server misbehaving/i },
];

export interface FailureInput {
  builder: BuilderKind;
  /** the builder's last lines, oldest first */
  lines: readonly string[];
  /** the Dockerfile the build ran, to name the line a step starts on */
  dockerfile: string;
  buildArgs?: Readonly<Record<string, string>>;
  /** the --target the build asked for */
  target?: string;
}

/**
 * The typed failure a builder's output shows, or null when the taxonomy does not recognise it
 * (the builder then keeps its own generic error).
 */
export function classifyFailure(input: FailureInput): FleetError | null {
  const reason = finalReason(input.builder, input.lines);
  if (reason === null) return null;
  const kind = REASONS.find((r) => r.re.test(reason))?.kind;
  if (kind === undefined) return null;
  // A RUN that failed in kaniko says only "exit status N": the instruction is the last one it announced.
  const at = locate(kind, reason, input);
  const exitCode = kind === 'step' ? exitCodeOf(reason) : undefined;
  const where = at === null ? (kind === 'target' && input.target !== undefined ? ` (--target ${input.target})` : '') : ` at Dockerfile line ${at.line} (${at.text})`;
  const message = `${KINDS[kind].label}${where}${exitCode === undefined ? '' : ` with exit code ${exitCode}`}: ${input.builder}: ${reason}`;
  return new FleetError(KINDS[kind].code, oneLine(message), {
    ...(at === null ? {} : { step: at.text }),
    ...(exitCode === undefined ? {} : { exitCode }),
  });
}

/** The builder's own last error line (the reason it gives), or null when it printed none. */
export function finalReason(builder: BuilderKind, lines: readonly string[]): string | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = FINAL_LINE[builder].exec(lines[i] ?? '');
      if (m?.[1] !== undefined) return tidy(m[1]);
  }
  return null;
}

/** buildah appends its parser's Go struct to an unknown instruction: not for a person to read. */
function tidy(reason: string): string {
  return reason.replace(/\s*&imagebuilder\.Step\{.*$/, '');
}

/** The Dockerfile instruction a failure is about, as the builder names it or as the reason implies. */
function locate(kind: Kind, reason: string, input: FailureInput): Instruction | null {
  const all = instructions(input.dockerfile);
  const byLine = (line: number): Instruction | null => all.find((i) => i.line === line) ?? null;
  const byText = (text: string): Instruction | null => all.find((i) => i.text === text.trim()) ?? all.find((i) => i.text.startsWith(text.trim())) ?? null;
  // The builder said which line: BuildKit's excerpt, any builder's "parse error on line N".
  const parseLine = /parse error on line (\d+)/i.exec(reason)?.[1];
  if (parseLine !== undefined) return byLine(Number(parseLine)) ?? { line: Number(parseLine), text: '' };
  if (input.builder === 'buildkit') {
    const line = lastMatch(input.lines, BUILDKIT_LINE);
    if (line !== null) return byLine(Number(line)) ?? { line: Number(line), text: lastMatch(input.lines, BUILDKIT_EXCERPT) ?? '' };
  }
  // The builder named the step: buildah's STEP "…" (its quotes are not escaped: the instruction
  // whose text the reason starts with wins, the longest), kaniko's last announced instruction.
  const named = all.filter((i) => reason.startsWith(`building at STEP "${i.text}": `)).sort((x, y) => y.text.length - x.text.length)[0];
  if (named !== undefined) return named;
  // kaniko names no step in its error: the one it announced last, when the error came from running it
  const kanikoRan = input.builder === 'kaniko' && (kind === 'step' || reason.includes('failed to execute command'));
  const step = BUILDAH_STEP.exec(reason)?.[1] ?? (kanikoRan ? lastKanikoStep(input.lines) : null);
  if (step !== null && step !== undefined && step.trim() !== '') return byText(step) ?? { line: 0, text: step };
  switch (kind) {
    case 'invalid': {
      const word = /unknown instruction: "?(\w+)"?/i.exec(reason)?.[1];
      return word === undefined ? null : (all.find((i) => i.text.split(/\s/)[0]?.toUpperCase() === word.toUpperCase()) ?? null);
    }
    case 'copySource': {
      // kaniko: `/workspace/missing.txt`; buildah: `"/missing.txt"`
      const source = /fileinfo for \/workspace\/(\S+?):/.exec(reason)?.[1] ?? /stat: "\/([^"]+)"/.exec(reason)?.[1];
      return source === undefined ? null : (all.find((i) => /^(?:COPY|ADD)\s/i.test(i.text) && i.text.split(/\s+/).slice(1).some((w) => w.replace(/^\.?\//, '').replace(/\/$/, '') === source.replace(/\/$/, ''))) ?? null);
    }
    case 'remoteSource': {
      const url = /(?:Get|Head) "([^"]+)"/.exec(reason)?.[1];
      return (url === undefined ? null : all.find((i) => /^ADD\s/i.test(i.text) && i.text.includes(url))) ?? null;
    }
    case 'target': {
      const stage = /COPY --from=(\S+?):/.exec(reason)?.[1];
      return stage === undefined ? null : (all.find((i) => i.text.includes(`--from=${stage}`)) ?? null);
    }
    case 'baseNotFound':
    case 'baseUnauthorized':
    case 'registry': {
      const from = fromImages(input.dockerfile, input.buildArgs ?? {}).find((f) => f.image !== '' && reason.includes(f.image));
      return from === undefined ? null : byLine(from.line);
    }
    case 'step':
    case 'resources':
      return null;
  }
}

function lastKanikoStep(lines: readonly string[]): string | null {
  for (let i = lines.length - 1; i >= 0; i--) if (KANIKO_STEP.test(lines[i] ?? '')) return lines[i] ?? null;
  return null;
}

function lastMatch(lines: readonly string[], re: RegExp): string | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = re.exec(lines[i] ?? '');
    if (m?.[1] !== undefined) return m[1];
  }
  return null;
}

function exitCodeOf(reason: string): number | undefined {
  const m = /exit code: (\d+)|exit status (\d+)/.exec(reason);
  const n = m?.[1] ?? m?.[2];
  return n === undefined ? undefined : Number(n);
}

/** Messages are one line (a status line, an event): long Go error chains stay, newlines do not. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').slice(0, 1000);
}

/** Keeps a builder's last lines for the taxonomy (a bounded window). */
export class RecentLines {
  readonly lines: string[] = [];
  push(text: string): void {
    this.lines.push(text);
    if (this.lines.length > RECENT_LINES) this.lines.shift();
  }
}

/**
 * The builders' hook: after a failed run (not a cancelled one), throws the typed failure the
 * output shows; returns when the taxonomy does not recognise it, so the builder's own error stands.
 */
export async function throwClassified(builder: BuilderKind, run: ToolRun, recent: RecentLines, plan: BuildPlan): Promise<void> {
  if (run.cancelled || run.exitCode === 0) return;
  const dockerfile = await readFile(plan.dockerfile, 'utf8').catch(() => '');
  const typed = classifyFailure({ builder, lines: recent.lines, dockerfile, buildArgs: plan.buildArgs, ...(plan.target === undefined ? {} : { target: plan.target }) });
  if (typed !== null) throw typed;
}
