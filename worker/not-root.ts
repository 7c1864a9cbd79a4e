import { ErrorCode, FleetError } from '../protocol/index.ts';

/** Workers never run as root: a build must not be able to reach anything root can. */
export function assertNotRoot(uid: number = process.getuid?.() ?? -1): void {
  if (uid === 0) {
    throw new FleetError(
      ErrorCode.E_WORKER_AS_ROOT,
      'refusing to run as root (uid 0): start the worker as the unprivileged build user (see scripts/bootstrap), e.g. `runuser -u fleetbuild -- node --import tsx worker/main.ts --config worker.json`',
    );
  }
}
