import type { BuildRecord, BuildState } from '../../protocol/index.ts';

/** A build record as the builds bucket holds it, for the list's tests (coordinator/build-list.ts and its stream). */
export const buildRecord = (id: string, tenant: string, repository: string, createdAt: string, state: BuildState = { phase: 'queued' }, updatedAt = createdAt): BuildRecord => ({
  id,
  requestHash: 'h',
  tenant,
  createdAt,
  updatedAt,
  state,
  request: {
    id,
    kind: 'custom',
    pool: 'default',
    context: { digest: `sha256:${'a'.repeat(64)}` },
    dockerfile: 'Dockerfile',
    buildArgs: {},
    labels: {},
    secrets: [],
    image: { repository, tags: ['1'] },
  },
});
