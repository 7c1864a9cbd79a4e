import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nkeyAuthenticator } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';

describe('NATS with TLS', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ natsTls: true });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('builds with every component on TLS, verified against the fleet CA', async () => {
    expect(fleet.client.credentials.tlsCaFile).toBeDefined();
    const { digest } = await fleet.client.uploadContext(fixture('tiny'));
    await fleet.client.submit({ id: 'tls-1', context: { digest }, image: { repository: 'app/tls', tags: ['1'] } });
    expect((await fleet.client.follow('tls-1', {})).state.phase).toBe('pushed');
  });

  it('refuses a client that cannot verify the server, even with valid credentials', async () => {
    const creds = fleet.client.credentials;
    const seed = new TextEncoder().encode((await readFile(creds.seedFile, 'utf8')).trim());
    // No CA: the server's certificate chains to nothing the client trusts.
    const refused = await connect({ servers: fleet.nats.url, authenticator: nkeyAuthenticator(seed), inboxPrefix: `_INBOX_${creds.user}`, timeout: 5_000 }).then(
      async (nc) => {
        await nc.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(Error);
    expect(String(refused)).toMatch(/certificate|self.signed|verify/i);
  });
});
