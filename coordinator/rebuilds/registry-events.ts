import { DistributionEnvelope, ErrorCode, FleetError, HarborWebhook, parseWith } from '../../protocol/index.ts';
import { MEDIA } from '../../adapters/registry-client.ts';
import { baseNameOf } from './base-name.ts';

/** Manifest media types: a push of anything else (a blob, a signature layer) moves no tag. */
const MANIFESTS: ReadonlySet<string> = new Set([MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList]);

/**
 * The tag names a registry says were pushed, from either body: the CNCF distribution registry's
 * notification envelope (`{events:[{action:"push", target:{repository, tag, …}}]}`) or Harbor's
 * `PUSH_ARTIFACT` webhook. Other events (pulls, deletes, Harbor's scans) name nothing. What the
 * registry says is a hint only: the trigger reads the tag's digest from the registry itself.
 */
export function pushedTags(body: unknown, registryHost: string): string[] {
  if (typeof body === 'object' && body !== null && 'events' in body) {
    const envelope = parseWith(DistributionEnvelope, body, 'registry notification');
    return unique(
      envelope.events
        .filter((e) => e.action === 'push' && e.target.tag !== undefined && e.target.tag !== '' && (e.target.mediaType === undefined || MANIFESTS.has(e.target.mediaType)))
        .map((e) => baseNameOf(registryHost, e.target.repository, e.target.tag ?? '')),
    );
  }
  if (typeof body === 'object' && body !== null && 'event_data' in body) {
    const hook = parseWith(HarborWebhook, body, 'Harbor webhook');
    if (hook.type !== 'PUSH_ARTIFACT') return [];
    return unique(
      hook.event_data.resources
        .filter((r) => r.tag !== undefined && r.tag !== '')
        .map((r) => {
          // resource_url names Harbor's own host (`harbor.example.com/library/app:1`); without it, ours.
          const host = r.resource_url?.split('/')[0] ?? registryHost;
          return baseNameOf(host, hook.event_data.repository.repo_full_name, r.tag ?? '');
        }),
    );
  }
  throw new FleetError(ErrorCode.E_INVALID_REQUEST, 'not a registry notification: expected a distribution envelope ({events:[…]}) or a Harbor webhook ({type, event_data})');
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}
