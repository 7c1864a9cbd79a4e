import { describe, expect, it } from 'vitest';
import { secretInAssignment, secretInFile, secretInHistory } from '../../../coordinator/gates/secret-patterns.ts';

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
  });

  it('reads build args out of buildah/BuildKit history entries', () => {
    expect(secretInHistory('|1 DB_PASSWORD=hunter2 /bin/sh -c echo configured')).toBe('build arg DB_PASSWORD is named like a secret and has a value');
    expect(secretInHistory('|2 GREETING=hi MODE=prod /bin/sh -c echo')).toBeNull();
    expect(secretInHistory('/bin/sh -c echo AKIAABCDEFGHIJKLMNOP > /x')).toBe('a AWS access key id appears in a build step');
  });

  it('recognises credential files by name and content', () => {
    expect(secretInFile('/root/.ssh/id_rsa', Buffer.from('anything'))).toBe('/root/.ssh/id_rsa is a SSH private key');
    expect(secretInFile('/app/.npmrc', Buffer.from('//registry.npmjs.org/:_authToken=abc'))).toBe('/app/.npmrc is a npm auth file');
    expect(secretInFile('/app/.npmrc', Buffer.from('save-exact=true'))).toBeNull();
    expect(secretInFile('/home/a/.docker/config.json', Buffer.from('{"auths":{"r":{"auth":"eDp5"}}}'))).toBe('/home/a/.docker/config.json is a registry auth file');
    expect(secretInFile('/etc/tls/server.pem', Buffer.from('-----BEGIN EC PRIVATE KEY-----\nMHc...'))).toBe('/etc/tls/server.pem holds a private key');
    expect(secretInFile('/etc/tls/ca.pem', Buffer.from('-----BEGIN CERTIFICATE-----'))).toBeNull();
  });
});
