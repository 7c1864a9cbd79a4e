import { describe, expect, it } from 'vitest';
import { SECRET_VALUE_PATTERNS, secretBuildArgValues, secretInAssignment, secretInText } from '../../protocol/index.ts';

describe('secret patterns', () => {
  it('flags secret-named variables with values, and never returns the value', () => {
    expect(secretInAssignment('DB_PASSWORD', 'hunter2')).toBe('is named like a secret and has a value');
    expect(secretInAssignment('API_TOKEN', 'abc')).not.toContain('abc');
    expect(secretInAssignment('GITHUB_TOKEN', 'x')).not.toBeNull();
  });

  it('lets through names that merely point at a secret, empty values and ordinary words', () => {
    expect(secretInAssignment('DB_PASSWORD_FILE', '/run/secrets/db')).toBeNull();
    expect(secretInAssignment('TOKEN', '')).toBeNull();
    expect(secretInAssignment('PASSWORD', '${PASSWORD}')).toBeNull();
    expect(secretInAssignment('BYPASS_CACHE', '1')).toBeNull();
    expect(secretInAssignment('org.opencontainers.image.authors', 'team')).toBeNull();
    expect(secretInAssignment('JAVA_TOOL_OPTIONS', '-javaagent:/opt/jacoco/jacocoagent.jar')).toBeNull();
  });

  it('finds secret-shaped values whatever the name', () => {
    expect(secretInAssignment('NOTE', 'AKIAABCDEFGHIJKLMNOP')).toBe('holds a AWS access key id');
    expect(secretInAssignment('X', `ghp_${'a'.repeat(36)}`)).toBe('holds a GitHub token');
    expect(secretInText(`//registry.npmjs.org/:_authToken=npm_${'A1'.repeat(18)}`)).toBe('npm token');
    expect(secretInText('-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n')).toBe('private key');
    expect(secretInText('-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n')).toBe('private key');
    expect(secretInText('-----BEGIN CERTIFICATE-----')).toBeNull();
    // code that recognises a PEM header is not a key (jose, every TLS library)
    expect(secretInText('if (pkcs8.indexOf("-----BEGIN PRIVATE KEY-----") !== 0) throw new TypeError()')).toBeNull();
    // AWS's documented example credentials, in every SDK's docs and type files
    expect(secretInText(' *     AccessKeyId: "AKIAIOSFODNN7EXAMPLE",')).toBeNull();
    expect(secretInText('AKIAI44QH8DHBEXAMPLE')).toBeNull();
  });

  it('picks out the build args the gate would flag, by name and by value, and only those', () => {
    const npm = `npm_${'x9'.repeat(18)}`;
    const args = { NPM_TOKEN: 'tok-live-0000', NOTE: npm, GREETING: 'hello', DB_PASSWORD_FILE: '/run/secrets/db', PASSWORD: '$PASSWORD' };
    expect(secretBuildArgValues(args).sort()).toEqual([npm, 'tok-live-0000'].sort());
  });

  it('value patterns join into one regex: no flags, no capturing groups', () => {
    for (const { re } of SECRET_VALUE_PATTERNS) {
      expect(re.flags).toBe('');
      expect(new RegExp(`${re.source}|`).exec('')?.length).toBe(1);
    }
  });
});
