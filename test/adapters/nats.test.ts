import { describe, expect, it } from 'vitest';
import { isFleetError } from '../../protocol/index.ts';
import { requireTlsOffLoopback } from '../../adapters/nats.ts';

describe('NATS connections off loopback', () => {
  it('allows plain connections to loopback servers only', () => {
    for (const url of ['nats://127.0.0.1:4222', 'nats://localhost:4222', 'nats://[::1]:4222', '127.0.0.2:4222']) {
      expect(() => requireTlsOffLoopback(url, {}), url).not.toThrow();
    }
  });

  it('refuses a server elsewhere unless a CA is given to verify it by, naming the host', () => {
    const err = (() => {
      try {
        requireTlsOffLoopback('nats://127.0.0.1:4222,nats://nats-0.nats.fleet.svc:4222', {});
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(isFleetError(err, 'E_INVALID_REQUEST')).toBe(true);
    expect(String(err)).toContain('nats-0.nats.fleet.svc');
    expect(() => requireTlsOffLoopback('nats://nats-0.nats.fleet.svc:4222', { tlsCaFile: '/etc/fleet/nats-ca.pem' })).not.toThrow();
  });
});
