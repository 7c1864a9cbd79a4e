import { describe, expect, it } from 'vitest';
import { annotateManifest, baseAnnotations, BASE_DIGEST_ANNOTATION, BASE_NAME_ANNOTATION } from '../../worker/builders/base-annotations.ts';
import { finalStageBase } from '../../worker/base-digests.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('the final stage base', () => {
  const dockerfile = [
    'ARG FLEET_REGISTRY',
    'FROM ${FLEET_REGISTRY}/official/jdk17:1 AS build',
    'FROM ${FLEET_REGISTRY}/official/jre17:1 AS runtime',
    'FROM runtime AS debug',
  ].join('\n');

  it('follows FROM <stage> back to an image, for the last stage or the target', () => {
    expect(finalStageBase(dockerfile, { FLEET_REGISTRY: 'r:5000' })).toBe('r:5000/official/jre17:1');
    expect(finalStageBase(dockerfile, { FLEET_REGISTRY: 'r:5000' }, 'build')).toBe('r:5000/official/jdk17:1');
    expect(finalStageBase(dockerfile, { FLEET_REGISTRY: 'r:5000' }, 'RUNTIME')).toBe('r:5000/official/jre17:1');
  });

  it('never reads a FROM inside a heredoc body', () => {
    expect(finalStageBase('FROM r/a:1\nRUN <<EOF\nFROM r/evil:1\nEOF\n', {})).toBe('r/a:1');
  });

  it('is nothing for a final stage on scratch or an unknown target', () => {
    expect(finalStageBase('FROM r/a:1 AS b\nFROM scratch\nCOPY --from=b /x /x', {})).toBeNull();
    expect(finalStageBase(dockerfile, {}, 'nope')).toBeNull();
  });
});

describe('base annotations on a manifest', () => {
  const annotations = baseAnnotations({ name: 'r:5000/official/base:1', digest: D });

  it('adds them to an OCI manifest, replacing a builder\'s own values', () => {
    const oci = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D, size: 1 }, layers: [], annotations: { [BASE_NAME_ANNOTATION]: 'r:5000/official/base@sha256:x', keep: 'me' } };
    const out = JSON.parse(annotateManifest(Buffer.from(JSON.stringify(oci)), annotations).toString()) as typeof oci;
    expect(out.annotations).toEqual({ keep: 'me', [BASE_NAME_ANNOTATION]: 'r:5000/official/base:1', [BASE_DIGEST_ANNOTATION]: D });
  });

  it('turns a docker schema2 manifest into OCI (same blobs) to carry them', () => {
    const docker = {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: D, size: 1 },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: D, size: 2 }],
    };
    const out = JSON.parse(annotateManifest(Buffer.from(JSON.stringify(docker)), annotations).toString()) as typeof docker & { annotations: Record<string, string> };
    expect(out.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(out.config).toEqual({ mediaType: 'application/vnd.oci.image.config.v1+json', digest: D, size: 1 });
    expect(out.layers).toEqual([{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D, size: 2 }]);
    expect(out.annotations[BASE_DIGEST_ANNOTATION]).toBe(D);
  });

  it('sets nothing for a scratch image', () => {
    expect(baseAnnotations(null)).toEqual({});
  });
});
