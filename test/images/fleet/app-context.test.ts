import { describe, expect, it } from 'vitest';
import { imageEnv } from '../../../images/fleet/app-context.ts';

describe('imageEnv', () => {
  it("reads the coordinator image's ENV as its Dockerfile sets it, NODE_OPTIONS included (what the scale bench runs the coordinator with)", async () => {
    const env = await imageEnv('coordinator');
    expect(env).toMatchObject({ NODE_ENV: 'production', FLEET_LOG_JSON: '1' });
    expect(env.NODE_OPTIONS).toMatch(/^--max-semi-space-size=\d+$/);
  });

  it("reads the scanner image's grype settings, and nothing from lines that are not ENV", async () => {
    const env = await imageEnv('scanner');
    expect(env).toMatchObject({ GRYPE_DB_AUTO_UPDATE: 'false', GRYPE_DB_CACHE_DIR: '/var/lib/grype' });
    expect(Object.keys(env)).not.toContain('FLEET_REGISTRY');
  });
});
