import { secretInAssignment, secretInText } from '../../protocol/index.ts';

/**
 * Where the `no-secrets` gate looks for secrets in an image: history entries and layer files.
 * What a secret looks like is protocol/secret-patterns.ts, shared with the worker's log masker.
 * Findings name the kind and where, never the value.
 */

/**
 * Build args in a history entry. Buildah and BuildKit record `RUN` steps that saw build args as
 * `|N NAME=value NAME=value /bin/sh -c …`; kaniko and others may differ, so the whole text is
 * also checked for secret-shaped values.
 */
export function secretInHistory(createdBy: string): string | null {
  const m = /^\|(\d+) (.*)$/s.exec(createdBy);
  if (m?.[1] !== undefined && m[2] !== undefined) {
    let rest = m[2];
    for (let i = 0; i < Number(m[1]); i++) {
      const arg = /^([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*/.exec(rest);
      if (arg?.[1] === undefined) break;
      const why = secretInAssignment(arg[1], arg[2] ?? '');
      if (why !== null) return `build arg ${arg[1]} ${why}`;
      rest = rest.slice(arg[0].length);
    }
  }
  const kind = secretInText(createdBy);
  return kind === null ? null : `a ${kind} appears in a build step`;
}

/** Files whose name says they hold credentials. */
const CREDENTIAL_FILES: readonly { re: RegExp; kind: string; content?: RegExp }[] = [
  { re: /\/id_(rsa|dsa|ecdsa|ed25519)$/, kind: 'SSH private key' },
  { re: /\/\.npmrc$/, kind: 'npm auth file', content: /_auth(Token)?\s*=/ },
  { re: /\/\.docker\/config\.json$/, kind: 'registry auth file', content: /"auths?"\s*:\s*\{[^}]*"auth"\s*:/s },
  { re: /\/\.aws\/credentials$/, kind: 'cloud credentials file', content: /aws_secret_access_key/i },
  { re: /\/\.git-credentials$/, kind: 'git credentials file' },
  { re: /\/\.netrc$/, kind: 'netrc file', content: /\bpassword\b/ },
];

/** Files worth reading: credential file names and small text-like files. */
export function isCandidateFile(path: string, size: number): boolean {
  if (CREDENTIAL_FILES.some((f) => f.re.test(path))) return size <= 1 << 20;
  return size > 0 && size <= 256 * 1024 && !/\.(class|jar|so|a|o|png|jpe?g|gif|gz|zip|br|zst)$/.test(path);
}

/** Why this file is a leaked secret, or null. */
export function secretInFile(path: string, bytes: Buffer): string | null {
  const text = bytes.toString('latin1');
  for (const f of CREDENTIAL_FILES) {
    if (f.re.test(path) && (f.content === undefined || f.content.test(text))) return `${path} is a ${f.kind}`;
  }
  const kind = secretInText(text);
  return kind === null ? null : `${path} holds a ${kind}`;
}
