import { buckets, consumers, streams, subjects } from './names.ts';

/**
 * Every NATS identity of the fleet and what it may publish and subscribe to. The server enforces
 * these (deploy renders them into its authorization block), so a client holding one identity's
 * credentials can do nothing beyond them, whatever code it runs.
 */
export type NatsRole =
  | { readonly kind: 'coordinator' }
  /** the platform's own operators and the local CLI: everything */
  | { readonly kind: 'admin' }
  /** one identity per pool: its credentials prove which pool a worker serves */
  | { readonly kind: 'worker'; readonly pool: string }
  /** a release system submitting over NATS for one tenant */
  | { readonly kind: 'tenant'; readonly tenant: string }
  /** the scanner pool: takes scan jobs, publishes their reports and its DB updates, nothing else */
  | { readonly kind: 'scanner' };

export interface NatsPermissions {
  readonly user: string;
  /** the client must use this inbox prefix; it may subscribe to nothing else's replies */
  readonly inboxPrefix: string;
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  /** may answer requests it received (the coordinator's API) */
  readonly allowResponses: boolean;
}

export function natsUser(role: NatsRole): string {
  switch (role.kind) {
    case 'coordinator':
    case 'admin':
    case 'scanner':
      return role.kind;
    case 'worker':
      return `worker-${role.pool}`;
    case 'tenant':
      return `tenant-${role.tenant}`;
  }
}

const KV_STREAM = (bucket: string): string => `KV_${bucket}`;

export function natsPermissions(role: NatsRole): NatsPermissions {
  const user = natsUser(role);
  const inboxPrefix = `_INBOX_${user}`;
  const inbox = `${inboxPrefix}.>`;
  switch (role.kind) {
    case 'admin':
      return { user, inboxPrefix, publish: ['>'], subscribe: ['>'], allowResponses: true };
    case 'coordinator':
      return {
        user,
        inboxPrefix,
        publish: ['$JS.API.>', '$JS.ACK.>', '$JS.FC.>', '$KV.>', 'fleet.v1.>'],
        subscribe: ['fleet.v1.api.>', subjects.scanResultWildcard, subjects.scannerDbUpdated, inbox],
        allowResponses: true,
      };
    case 'worker': {
      const pool = role.pool;
      const jobs = `${streams.jobs}.${consumers.pool(pool)}`;
      const builds = KV_STREAM(buckets.builds);
      return {
        user,
        inboxPrefix,
        publish: [
          // its pool's work queue, and nothing of any other pool's
          `$JS.API.CONSUMER.INFO.${jobs}`,
          `$JS.API.CONSUMER.MSG.NEXT.${jobs}`,
          `$JS.ACK.${jobs}.>`,
          `fleet.v1.api.claim.${pool}`,
          // log lines and reports of builds on its pool (the coordinator checks who holds the claim)
          `fleet.v1.build.*.log.${pool}`,
          `fleet.v1.build.*.report.${pool}`,
          // its pool's entries in the worker registry
          `$JS.API.STREAM.INFO.${KV_STREAM(buckets.workers)}`,
          `$KV.${buckets.workers}.${pool}.>`,
          // watching a build record for a cancel: reads, never writes
          `$JS.API.STREAM.INFO.${builds}`,
          `$JS.API.CONSUMER.CREATE.${builds}.>`,
          `$JS.API.CONSUMER.DELETE.${builds}.>`,
          `$JS.API.CONSUMER.MSG.NEXT.${builds}.>`,
          `$JS.FC.${builds}.>`,
        ],
        subscribe: [inbox],
        allowResponses: false,
      };
    }
    case 'scanner': {
      const queue = `${streams.scanJobs}.${consumers.scanner}`;
      return {
        user,
        inboxPrefix,
        publish: [`$JS.API.CONSUMER.INFO.${queue}`, `$JS.API.CONSUMER.MSG.NEXT.${queue}`, `$JS.ACK.${queue}.>`, subjects.scanResultWildcard, subjects.scannerDbUpdated],
        subscribe: [inbox],
        allowResponses: false,
      };
    }
    case 'tenant': {
      const t = role.tenant;
      return {
        user,
        inboxPrefix,
        publish: [`fleet.v1.api.submit.${t}`, `fleet.v1.api.status.${t}`, `fleet.v1.api.cancel.${t}`],
        subscribe: [inbox],
        allowResponses: false,
      };
    }
  }
}
