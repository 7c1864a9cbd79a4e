import { describe, expect, it } from 'vitest';
import { secretInFile, secretInHistory } from '../../../coordinator/gates/secret-patterns.ts';

describe('secret patterns in images', () => {
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
    expect(secretInFile('/etc/tls/server.pem', Buffer.from('-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oIHRtEMQjxvMoAoGCCqGSM49\n'))).toBe('/etc/tls/server.pem holds a private key');
    // a key escaped in a JSON or JS string is still a key
    expect(secretInFile('/app/config.json', Buffer.from('{"key":"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"}'))).toBe('/app/config.json holds a private key');
    expect(secretInFile('/etc/tls/ca.pem', Buffer.from('-----BEGIN CERTIFICATE-----'))).toBeNull();
  });
});
