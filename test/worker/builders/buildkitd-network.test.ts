import { describe, expect, it } from 'vitest';
import { buildkitdCommand, checkBuildkitNetwork } from '../../../worker/builders/buildkitd.ts';
import { compileWorkerConfig } from '../../../worker/config.ts';
import { FleetError } from '../../../protocol/index.ts';

const BASE = { natsUrl: 'nats://x:4222', natsCredentials: { seedFile: '/s', user: 'worker-default' }, stateDir: '/var/lib/fleet', s3: { bucket: 'contexts' } } as const;

describe('BuildKit sandbox network', () => {
  it('uses slirp4netns, the host loopback hidden, unless the pool says pod', () => {
    const argv = buildkitdCommand('/d', '/d/s');
    expect(argv).toContain('--net=slirp4netns');
    expect(argv).toContain('--disable-host-loopback');
    expect(argv).not.toContain('--net=host');
    expect(compileWorkerConfig(BASE).buildkitNetwork).toBe('slirp4netns');
  });

  it('runs rootlesskit in the pod’s own namespace (--net=host) only for `pod`', () => {
    const argv = buildkitdCommand('/d', '/d/s', {}, 'pod');
    expect(argv).toContain('--net=host');
    expect(argv.filter((a) => a.startsWith('--net='))).toEqual(['--net=host']);
    expect(argv).toContain('--port-driver=none');
    expect(compileWorkerConfig({ ...BASE, buildkitNetwork: 'pod' }).buildkitNetwork).toBe('pod');
  });

  it('refuses slirp4netns without a tun device instead of falling back', () => {
    expect(() => checkBuildkitNetwork('slirp4netns', false)).toThrow(FleetError);
    expect(() => checkBuildkitNetwork('slirp4netns', false)).toThrow(/"buildkitNetwork": "pod"/);
    expect(() => checkBuildkitNetwork('slirp4netns', true)).not.toThrow();
    expect(() => checkBuildkitNetwork('pod', false)).not.toThrow();
    expect(() => compileWorkerConfig({ ...BASE, buildkitNetwork: 'host' as never })).toThrow();
  });
});
