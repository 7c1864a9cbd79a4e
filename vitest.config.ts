import { defineConfig } from 'vitest/config';

/**
 * Test files that start real processes: nats-server, the registry, versitygw, podman/buildah,
 * builders or a worker. They need `scripts/bootstrap` to have run; everything else is `unit`.
 */
const INTEGRATION = [
  'test/integration/**/*.test.ts',
  // a local fleet scraped for metrics; kustomize and kubeconform over deploy/kubernetes
  'test/deploy/**/*.test.ts',
  // buildah and podman as the build user, in a runtime of its own
  'test/node/containers-config.test.ts',
  // Debian's docker-registry, refusing a manifest for real
  'test/adapters/registry-client.test.ts',
  // spawns worker/main.ts (as root, to see it refuse)
  'test/worker/not-root.test.ts',
  // hostile contexts for real: 100,000 files written, a 2 GiB gzip bomb; minutes on a busy machine
  'test/worker/context-extract.test.ts',
  // the web console in Debian's chromium against a local fleet
  'test/ui/**/*.test.ts',
];

export default defineConfig({
  test: {
    // Integration files each start their own NATS, registry and worker; two at a time fit 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
    // Each file in a process of its own, spawning from its main thread: the servers and workers a
    // test starts die with that thread (pdeathsig), and a worker thread ends before its process.
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: INTEGRATION,
          testTimeout: 30_000,
          hookTimeout: 30_000,
          // Ahead of the integration files when both run: a broken unit fails in seconds.
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: INTEGRATION,
          // A real build is seconds on a quiet machine but minutes at load 30+ (kaniko's two-stage
          // conformance build took 119.8 s there): the cap catches a hang, not a slow machine.
          testTimeout: 300_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
