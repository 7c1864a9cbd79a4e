/**
 * Rebuild on base update: a dependency index kept from promotions (dependency-index.ts), changes
 * noticed by registry notifications, a poller and promotions here (trigger.ts, poller.ts), and
 * waves that rebuild each dependent once, bases before their dependents (waves.ts).
 * docs/rebuilds.md has the whole story.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import {
  COORDINATOR_QUEUE,
  ErrorCode,
  FleetError,
  PLATFORM_TENANT,
  RebuildsRequest,
  decodeWith,
  encode,
  subjects,
  toFleetError,
  type BuildEvent,
  type BuildRecord,
  type RebuildWaveView,
  type RebuildsReply,
} from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import { RegistryClient } from '../../adapters/registry-client.ts';
import type { Caller } from '../tenancy/authorize.ts';
import { baseNameOf, parseBaseName } from './base-name.ts';
import { followBuildEvents, rebuildEventsConsumer } from './build-events.ts';
import { DependencyIndex } from './dependency-index.ts';
import type { RebuildOptions } from './options.ts';
import { BasePoller } from './poller.ts';
import { pushedTags } from './registry-events.ts';
import { RebuildTrigger } from './trigger.ts';
import { Waves, type WaveDeps } from './waves.ts';
import type { JetStreamResources } from '../jetstream-resources.ts';

export { RebuildOptions } from './options.ts';
export { REBUILDS_SUBJECT, rebuildIdOf } from './waves.ts';

export interface RebuildsDeps {
  /** the intake's submit: a rebuild is an ordinary request, validated and authorized like one */
  submit: WaveDeps['submit'];
  record(id: string): Promise<BuildRecord | null>;
  publish(event: BuildEvent): Promise<void>;
  /** the coordinator's own registry client (its credentials) */
  registry: RegistryClient;
  registryHost: string;
  /** coordinator/notifications' Notifier.notify, when the fleet has notifications */
  notify?: WaveDeps['notify'];
}

export interface Rebuilds {
  /** a registry's push notification (distribution envelope or Harbor webhook); returns the tags it names */
  notification(body: unknown): string[];
  /** waves, newest first; a tenant's caller sees only its own dependents */
  list(caller: Caller, base?: string): Promise<RebuildWaveView[]>;
  /** how many looks at bases the trigger has completed (debounced notices and polls) */
  looks(): number;
  close(): Promise<void>;
}

export async function startRebuilds(nc: NatsConnection, resources: JetStreamResources, options: RebuildOptions, deps: RebuildsDeps, log: Logger): Promise<Rebuilds | null> {
  if (!options.enabled) return null;
  const rlog = log.child({ component: 'rebuilds' });
  const js = jetstream(nc);
  const stop = new AbortController();
  const index = await DependencyIndex.open(resources, rlog);
  const waves = await Waves.open(resources, { submit: deps.submit, record: deps.record, publish: deps.publish, ...(deps.notify === undefined ? {} : { notify: deps.notify }) }, options.maxInFlightPerPool, rlog);
  const foreign = new Map<string, RegistryClient>();
  const clientFor = (host: string): RegistryClient => {
    if (host === deps.registryHost) return deps.registry;
    let client = foreign.get(host);
    // Docker Hub's names say docker.io; its registry API answers at registry-1.docker.io.
    if (client === undefined) foreign.set(host, (client = new RegistryClient({ host: host === 'docker.io' ? 'registry-1.docker.io' : host, insecure: false }, 15_000)));
    return client;
  };
  const trigger = new RebuildTrigger(
    index,
    waves,
    async (base, signal) => {
      const ref = parseBaseName(base);
      return ref === null ? null : clientFor(ref.host).headDigest(ref.repository, ref.tag, signal);
    },
    options.debounceMs,
    deps.registryHost,
    stop.signal,
    rlog,
  );
  const poller = new BasePoller(index, trigger, options.pollIntervalMs, options.pollJitter, stop.signal, rlog);
  poller.start();

  const events = followBuildEvents(
    await rebuildEventsConsumer(await jetstreamManager(nc), js),
    {
      record: deps.record,
      promoted: async (record) => {
        if (record.state.phase !== 'pushed') return;
        // A worker older than the bases field says nothing of them: the index keeps what it knew.
        if (record.state.bases !== undefined) await index.promoted(record, record.state.bases, deps.registryHost);
        for (const tag of record.request.image.tags) trigger.notice(baseNameOf(deps.registryHost, record.request.image.repository, tag), 'promotion');
      },
      ended: () => waves.pump(),
    },
    stop.signal,
    rlog,
  ).catch((e: unknown) => rlog.error({ err: e }, 'rebuild event loop ended'));
  // Builds also end where no event reaches this replica first (another replica's turn): look now and then.
  const pumpTimer = setInterval(() => waves.hasOpenWaves() && waves.pump(), options.pumpIntervalMs);

  const list = (caller: Caller, base?: string): Promise<RebuildWaveView[]> => {
    const admin = caller.role === 'admin' && caller.tenant === PLATFORM_TENANT;
    return waves.list({ ...(base === undefined ? {} : { base }), ...(admin ? {} : { tenant: caller.tenant }) });
  };
  // `fleet rebuilds`: only admins may publish on this subject (protocol/nats-permissions.ts).
  const sub: Subscription = nc.subscribe(subjects.rebuildsApi, {
    queue: COORDINATOR_QUEUE,
    callback: (err, msg) => {
      if (err !== null) return;
      void (async () => {
        let reply: RebuildsReply;
        try {
          const req = decodeWith(RebuildsRequest, msg.data, 'rebuilds request');
          reply = { ok: true, waves: await list({ subject: 'nats:admin', tenant: PLATFORM_TENANT, role: 'admin' }, req.base) };
        } catch (e) {
          reply = { ok: false, error: toFleetError(e).toBody() };
        }
        msg.respond(encode(reply));
      })();
    },
  });

  return {
    notification(body) {
      const tags = pushedTags(body, deps.registryHost);
      for (const tag of tags) trigger.notice(tag, 'notification');
      return tags;
    },
    list,
    looks: () => trigger.looks,
    async close() {
      stop.abort();
      clearInterval(pumpTimer);
      await sub.drain();
      await trigger.close();
      await Promise.all([events, poller.settled(), waves.settled()]);
    },
  };
}

/** Whether a caller may post registry notifications: any credential of the platform's tenant (a notification is only a hint). */
export function authorizeNotifier(caller: Caller): void {
  if (caller.tenant !== PLATFORM_TENANT) throw new FleetError(ErrorCode.E_FORBIDDEN, 'forbidden: tenant: registry notifications are taken from the platform\'s own tokens only', { issues: [{ path: 'tenant', message: 'use a token of the platform tenant' }] });
}
