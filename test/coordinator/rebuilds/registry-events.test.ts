import { describe, expect, it } from 'vitest';
import { pushedTags } from '../../../coordinator/rebuilds/registry-events.ts';
import { followedBases, parseBaseName, rebuildReason } from '../../../coordinator/rebuilds/base-name.ts';
import { rebuildIdOf } from '../../../coordinator/rebuilds/waves.ts';
import { BuildId } from '../../../protocol/index.ts';

const HOST = '127.0.0.1:5000';
const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;

describe('registry notifications', () => {
  it('reads the tags of manifest pushes from a distribution envelope, once each; blob pushes, pulls and untagged pushes name nothing', () => {
    const envelope = {
      events: [
        { action: 'push', target: { repository: 'official/base', tag: '1', digest: D1, mediaType: 'application/vnd.oci.image.manifest.v1+json' } },
        { action: 'push', target: { repository: 'official/base', tag: '1', digest: D1, mediaType: 'application/vnd.docker.distribution.manifest.v2+json' } },
        { action: 'push', target: { repository: 'official/base', digest: D2, mediaType: 'application/octet-stream' } },
        { action: 'push', target: { repository: 'official/base', digest: D2, mediaType: 'application/vnd.oci.image.manifest.v1+json' } },
        { action: 'pull', target: { repository: 'official/jre17', tag: '1', digest: D1 } },
        { action: 'push', target: { repository: 'bases/x', tag: 'v2', digest: D2 } },
      ],
    };
    expect(pushedTags(envelope, HOST)).toEqual([`${HOST}/official/base:1`, `${HOST}/bases/x:v2`]);
  });

  it("reads Harbor's PUSH_ARTIFACT with Harbor's own host, and ignores its other events", () => {
    const hook = (type: string) => ({
      type,
      occur_at: 1680501893,
      operator: 'admin',
      event_data: { resources: [{ digest: D1, tag: 'latest', resource_url: 'harbor.example.com/library/busybox:latest' }], repository: { name: 'busybox', namespace: 'library', repo_full_name: 'library/busybox', repo_type: 'public' } },
    });
    expect(pushedTags(hook('PUSH_ARTIFACT'), HOST)).toEqual(['harbor.example.com/library/busybox:latest']);
    expect(pushedTags(hook('SCANNING_COMPLETED'), HOST)).toEqual([]);
  });

  it('refuses a body that is neither', () => {
    expect(() => pushedTags({ hello: 1 }, HOST)).toThrow(/not a registry notification/);
    expect(() => pushedTags({ events: [{ action: 'push' }] }, HOST)).toThrow(/registry notification/);
  });
});

describe('bases a rebuild follows', () => {
  it('follows tag names with a host, each once, never a digest-pinned one nor the build\'s own output (no self-trigger loop)', () => {
    const bases = [
      { name: `${HOST}/official/base:1`, digest: D1 },
      { name: `${HOST}/official/base:1`, digest: D1 },
      { name: `${HOST}/app/loop:1`, digest: D2 },
      { name: 'debian:12', digest: D2 },
      { name: `${HOST}/official/jdk17@${D2}`, digest: D2 },
    ];
    expect(followedBases(bases, HOST, 'app/loop', ['1', 'latest']).map((b) => b.name)).toEqual([`${HOST}/official/base:1`]);
    expect(parseBaseName(`${HOST}/bases/team/x:2`)).toEqual({ name: `${HOST}/bases/team/x:2`, host: HOST, repository: 'bases/team/x', tag: '2' });
  });

  it('derives one valid build id per (dependent, new base digest), and a reason people read', () => {
    const a = rebuildIdOf({ repository: 'app/payments/api', tags: ['1', 'latest'] }, D2);
    expect(BuildId.safeParse(a).success).toBe(true);
    expect(rebuildIdOf({ repository: 'app/payments/api', tags: ['latest', '1'] }, D2)).toBe(a);
    expect(rebuildIdOf({ repository: 'app/payments/api', tags: ['2'] }, D2)).not.toBe(a);
    expect(rebuildIdOf({ repository: 'app/payments/api', tags: ['1', 'latest'] }, D1)).not.toBe(a);
    expect(BuildId.safeParse(rebuildIdOf({ repository: `app/${'x'.repeat(200)}`, tags: ['1'] }, D2)).success).toBe(true);
    expect(rebuildReason(`${HOST}/official/jre17:1`, D1, D2)).toBe(`official/jre17:1 ${D1.slice(0, 19)}… → ${D2.slice(0, 19)}…`);
  });
});
