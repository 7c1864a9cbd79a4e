/**
 * What a secret looks like, shared by the coordinator's `no-secrets` gate and the worker's log
 * masker: whatever the gate would flag in an image, the masker keeps out of the log. Findings
 * name the kind and where, never the value: a verdict is published and logged, so it must not
 * become the leak it reports.
 */

/** Variable, label and build-arg names that announce a secret. */
export const SECRET_NAME = /(?<![a-z])(pass(word|wd)?|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|credential|auth)(?![a-z])/i;
/** Names that point at a secret rather than hold one (`DB_PASSWORD_FILE=/run/secrets/db`). */
export const REFERENCE_NAME = /_(file|path|dir|url|name|id)$/i;

/**
 * Text that is a secret whatever surrounds it. Each `re` has no flags and no capturing groups,
 * so the masker can join them into one regex with its own literals.
 */
export const SECRET_VALUE_PATTERNS: readonly { kind: string; re: RegExp }[] = [
  { kind: 'private key', re: /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----/ },
  // AWS's documented example ids (AKIAIOSFODNN7EXAMPLE…) fill SDK docs and type files: not secrets
  { kind: 'AWS access key id', re: /\b(?:AKIA|ASIA)(?![0-9A-Z]{9}EXAMPLE\b)[0-9A-Z]{16}\b/ },
  { kind: 'GitHub token', re: /\bgh[pousr]_[A-Za-z0-9]{36,}\b/ },
  { kind: 'npm token', re: /\bnpm_[A-Za-z0-9]{36}\b/ },
  { kind: 'Slack token', re: /\bxox[abprs]-[A-Za-z0-9-]{10,}\b/ },
];

/**
 * A private key block: the PEM header followed by key material (after optional RFC 1421 header
 * lines such as `Proc-Type:`), in a file or escaped in a string (`\n`). The header alone is how
 * every PEM parser recognises a key (`indexOf("-----BEGIN PRIVATE KEY-----")` in jose, openssl
 * bindings…): flagging it would block any image with a crypto library. The log masker keeps the
 * bare header pattern: hiding a header line costs nothing.
 */
const PRIVATE_KEY_BLOCK = /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----(?:\\[rn]|\s)+(?:[A-Za-z-]+:[^\n]*(?:\\[rn]|\s)+)*[A-Za-z0-9+/]{40}/;

/** The kind of secret a text contains (in an image's files, history, config), or null. */
export function secretInText(text: string): string | null {
  for (const { kind, re } of SECRET_VALUE_PATTERNS) {
    if (re.test(text) && (kind !== 'private key' || PRIVATE_KEY_BLOCK.test(text))) return kind;
  }
  return null;
}

/** Why `name=value` (an ENV entry, a label, a build arg) looks like a secret, or null. */
export function secretInAssignment(name: string, value: string): string | null {
  const kind = secretInText(value);
  if (kind !== null) return `holds a ${kind}`;
  if (value.trim() === '' || REFERENCE_NAME.test(name) || !SECRET_NAME.test(name)) return null;
  // `PASSWORD=$PASSWORD` or `TOKEN=/run/secrets/x` pass the value on without containing it.
  if (/^\$\{?[A-Za-z_]/.test(value) || value.startsWith('/run/secrets/')) return null;
  return 'is named like a secret and has a value';
}

/** The values of build args the gate would flag: they must not reach the build log either. */
export function secretBuildArgValues(buildArgs: Readonly<Record<string, string>>): string[] {
  return Object.entries(buildArgs)
    .filter(([name, value]) => secretInAssignment(name, value) !== null)
    .map(([, value]) => value);
}
