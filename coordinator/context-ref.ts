import { ErrorCode, FleetError, type BuildRequest } from '../protocol/index.ts';
import { contextKey } from '../adapters/s3-store.ts';

/** The key of a request's context in the fleet's bucket: its content address, or the url it names. */
export function contextKeyOf(request: BuildRequest, bucket: string): string {
  const url = request.context.url;
  if (url === undefined) return contextKey(request.context.digest);
  const [, urlBucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(url) ?? [];
  if (urlBucket !== bucket || key === undefined) {
    throw new FleetError(ErrorCode.E_INVALID_REQUEST, `invalid build request: context.url: must be in the fleet's bucket s3://${bucket}/`, {
      issues: [{ path: 'context.url', message: `must be in s3://${bucket}/` }],
    });
  }
  return key;
}
