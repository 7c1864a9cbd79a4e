import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { instructions, type Instruction } from '../official-bases.ts';
import { runFlagRefusal } from '../run-flags.ts';

/** `scheme://…` (http, https, git over https, anything buildah may fetch) or scp-style `git@host:…` */
const REMOTE = /^(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/|git@)/;

/**
 * The ADD instructions whose sources buildah would fetch itself, or might: a URL or git remote,
 * or a source holding a variable (`$X`, `${X}`), which buildah expands from the stage's ARGs and
 * ENV, a base image's ENV included, so it cannot be told from a local path beforehand. COPY never
 * fetches (buildah refuses a URL there), nor does an ADD of local files or a heredoc.
 */
export function remoteAdds(dockerfile: string): Instruction[] {
  return instructions(dockerfile).filter((i) => {
    const m = /^ADD\s+(.*)$/is.exec(i.text);
    if (m?.[1] === undefined) return false;
    return addSources(m[1]).map((s) => s.replace(/^["']|["']$/g, '')).some((s) => REMOTE.test(s) || s.includes('$'));
  });
}

/** An ADD's sources: its operands after the flags, the last (the destination) left out; JSON form too. */
function addSources(operands: string): string[] {
  let rest = operands.trim();
  for (let flag = /^--\S+\s*/.exec(rest); flag !== null; flag = /^--\S+\s*/.exec(rest)) rest = rest.slice(flag[0].length);
  if (rest.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(rest);
      if (Array.isArray(parsed) && parsed.every((p) => typeof p === 'string')) return parsed.slice(0, -1);
    } catch {
      // not JSON after all: the shell form below, as the builders read it
    }
  }
  return rest.split(/\s+/).slice(0, -1);
}

/**
 * The refusal a buildah build gets for what buildah would run outside a RUN step's sandbox: a
 * remote ADD in the Dockerfile, or in a base's ONBUILD triggers (they run as lines of the
 * Dockerfile) a remote ADD or a RUN flag the job runner refuses in the Dockerfile itself
 * (run-flags.ts). The triggers are read only when the Dockerfile passes.
 */
export async function workerNetworkRefusal(dockerfile: string, baseTriggers?: () => Promise<string[]>): Promise<FleetError | null> {
  const own = remoteAdds(dockerfile)[0];
  if (own !== undefined) return remoteAddError(`at Dockerfile line ${own.line} (${own.text})`, own.text);
  if (baseTriggers === undefined) return null;
  const triggers = (await baseTriggers()).join('\n');
  const triggered = remoteAdds(triggers)[0];
  if (triggered !== undefined) return remoteAddError(`in a base image's ONBUILD trigger (${triggered.text})`, triggered.text);
  return runFlagRefusal(triggers, (i) => `in a base image's ONBUILD trigger (${i.text})`);
}

function remoteAddError(where: string, step: string): FleetError {
  return new FleetError(
    ErrorCode.E_DOCKERFILE_INVALID,
    `ADD of a remote source ${where}: buildah would fetch it from the worker's own network, not from a RUN step's sandbox, so buildah pools refuse it (a source holding a variable too: it may expand to a URL); download it in a RUN step, use COPY for local files, or build on a buildkit or kaniko pool`,
    { step },
  );
}
