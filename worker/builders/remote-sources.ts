import { instructions, type Instruction } from '../official-bases.ts';

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
