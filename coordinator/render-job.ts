import type { AllowedBase, BuildJob, BuildRequest } from '../protocol/index.ts';
import type { CoordinatorConfig } from './config.ts';
import { contextKeyOf } from './context-ref.ts';
import type { LoadedCatalog } from './platform/catalog.ts';
import { renderStandard } from './platform/standard-dockerfile.ts';

export const QUARANTINE_NAMESPACE = 'quarantine/';

/** Where a build's image waits for its gates: its own tag in a repository releases never read. */
export function quarantineOf(request: BuildRequest): { repository: string; tag: string } {
  return { repository: `${QUARANTINE_NAMESPACE}${request.image.repository}`, tag: request.id };
}

/**
 * Turns a validated request into the concrete plan a worker executes. Throws E_INVALID_REQUEST
 * (with field paths) for a standard build naming ids the catalog does not have, so intake calls
 * it before accepting.
 */
export function renderJob(request: BuildRequest, config: CoordinatorConfig, catalog: LoadedCatalog, tenant: string, allowedBases?: readonly AllowedBase[]): BuildJob {
  const standard = request.standard === undefined ? null : renderStandard(request.standard, catalog, config.registry.host);
  return {
    v: 1,
    buildId: request.id,
    pool: request.pool,
    kind: request.kind,
    context: { key: contextKeyOf(request, config.s3.bucket), digest: request.context.digest },
    dockerfile: request.dockerfile,
    ...(standard === null ? {} : { renderedDockerfile: standard.dockerfile }),
    ...(request.target === undefined ? {} : { target: request.target }),
    buildArgs: { ...request.buildArgs, ...standard?.buildArgs },
    labels: request.labels,
    secrets: request.secrets,
    timeoutSeconds: request.timeoutSeconds ?? config.defaultRunTimeoutSeconds,
    image: { registry: config.registry.host, repository: request.image.repository, tags: request.image.tags },
    quarantine: quarantineOf(request),
    ...(allowedBases === undefined ? {} : { allowedBases: [...allowedBases] }),
    tenant,
  };
}
