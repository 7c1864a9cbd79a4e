/** Grace between SIGTERM and SIGKILL for every child process we start. */
export const KILL_GRACE_MS = 5_000;
