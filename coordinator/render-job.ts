import type { BuildJob, BuildRequest } from '../protocol/index.ts';
import type { CoordinatorConfig } from './config.ts';
import { contextKeyOf } from './context-ref.ts';

/** Turns a validated request into the concrete plan a worker executes. */
export function renderJob(request: BuildRequest, config: CoordinatorConfig): BuildJob {
  return {
    v: 1,
    buildId: request.id,
    pool: request.pool,
    context: { key: contextKeyOf(request, config.s3.bucket), digest: request.context.digest },
    dockerfile: request.dockerfile,
    ...(request.target === undefined ? {} : { target: request.target }),
    buildArgs: request.buildArgs,
    labels: request.labels,
    secrets: request.secrets,
    timeoutSeconds: request.timeoutSeconds ?? config.defaultRunTimeoutSeconds,
    image: { registry: config.registry.host, repository: request.image.repository, tags: request.image.tags },
  };
}
