import { ErrorCode, FleetError } from '../protocol/index.ts';

/** A parser directive line; an unknown key ends the directives, as any other line does. */
const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);

/**
 * Docker's own Dockerfile frontend under every name a `# syntax=` line gives it: Docker Hub's
 * `docker/dockerfile` (or `-upstream`), any tag (`1`, `1.7`, `1.7-labs`) or digest.
 */
const DOCKERFILE_FRONTEND = /^(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\/)?docker\/dockerfile(?:-upstream)?(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

/**
 * BuildKit's lint rule that fires on the platform's own FROM convention (`ARG FLEET_REGISTRY`, no
 * default, then `FROM ${FLEET_REGISTRY}/official/…`): the worker always sets that argument.
 */
const PLATFORM_FROM_RULE = 'InvalidDefaultArgInFrom';

export interface Directive {
  value: string;
  /** 1-based line */
  line: number;
}

/**
 * The Dockerfile's parser directives, read as BuildKit reads them: a byte-order mark and a `#!`
 * first line are skipped, then `# key=value` lines up to the first line that is not one (a blank
 * line or a comment ends them too).
 */
export function parserDirectives(dockerfile: string): Map<string, Directive> {
  const lines = dockerfile.replace(/^\uFEFF/, '').split(/\r?\n/);
  const found = new Map<string, Directive>();
  for (let at = lines[0]?.startsWith('#!') === true ? 1 : 0; at < lines.length; at++) {
    const m = DIRECTIVE.exec(lines[at] ?? '');
    const key = m?.[1]?.toLowerCase();
    if (m === null || key === undefined || !KNOWN_DIRECTIVES.has(key) || found.has(key)) break;
    found.set(key, { value: m[2] ?? '', line: at + 1 });
  }
  return found;
}

/** Whether a `# syntax=` frontend is Docker's Dockerfile frontend, which every builder here parses itself. */
export function isDockerfileFrontend(frontend: string): boolean {
  return DOCKERFILE_FRONTEND.test(frontend);
}

/**
 * What the build does with the Dockerfile's `# syntax=` line, the same on every builder: none, or
 * Docker's Dockerfile frontend (any version), builds with the builder's own parser and the log
 * says so (BuildKit is told to load no frontend, `buildctlArgs`); any other frontend is refused,
 * since no builder here would build what that frontend would.
 */
export function syntaxNote(dockerfile: string, builder: string): string | null {
  const directive = parserDirectives(dockerfile).get('syntax');
  if (directive === undefined) return null;
  const frontend = directive.value.split(' ')[0] ?? '';
  if (!isDockerfileFrontend(frontend)) {
    throw new FleetError(
      ErrorCode.E_DOCKERFILE_INVALID,
      `Dockerfile invalid at line ${directive.line}: "# syntax=${frontend}" asks for a frontend other than Docker's Dockerfile frontend (docker/dockerfile); the fleet builds every Dockerfile with the builder's own Dockerfile parser and never loads a frontend image`,
      { step: `# syntax=${directive.value}` },
    );
  }
  return `# syntax=${frontend}: built with ${builder}'s own Dockerfile parser (no frontend image is loaded)`;
}

/**
 * BuildKit's check options for the build (its `BUILDKIT_DOCKERFILE_CHECK`, which stands in for the
 * `# check=` directive): the Dockerfile's own, with the rule the platform's FROM convention trips
 * skipped, so `# check=error=true` fails a build on the app's warnings and never on that one.
 */
export function buildkitChecks(dockerfile: string): string {
  const options = (parserDirectives(dockerfile).get('check')?.value ?? '').split(';').map((o) => o.trim()).filter((o) => o !== '');
  const skip = options.find((o) => /^skip\s*=/.test(o));
  const rest = options.filter((o) => o !== skip);
  const skipped = skip === undefined ? [] : skip.slice(skip.indexOf('=') + 1).split(',').map((r) => r.trim()).filter((r) => r !== '');
  if (skipped.includes('all')) return [`skip=all`, ...rest].join(';');
  return [`skip=${[...new Set([...skipped, PLATFORM_FROM_RULE])].join(',')}`, ...rest].join(';');
}
