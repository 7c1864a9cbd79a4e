import type { JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';

export type StreamConfig = Parameters<JetStreamManager['streams']['add']>[0];
export type ConsumerConfig = Parameters<JetStreamManager['consumers']['add']>[1];

/**
 * Creates or updates the fleet's streams, consumers and buckets, every one with the same number
 * of replicas (`jetstreamReplicas`: 1 on one server, 3 on the Kubernetes 3-node cluster, so losing
 * a server loses no job, event or record). Idempotent: every coordinator start runs it, and an
 * existing stream is updated in place (replicas included: a cluster grown from one server moves
 * to R3 on the next start).
 */
export class JetStreamResources {
  constructor(
    private readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly replicas: number,
  ) {}

  async stream(cfg: StreamConfig & { name: string }): Promise<void> {
    const wanted = { ...cfg, num_replicas: this.replicas };
    try {
      await this.jsm.streams.info(cfg.name);
      await this.jsm.streams.update(cfg.name, wanted);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await this.jsm.streams.add(wanted);
    }
  }

  /** A durable consumer; its replicas follow its stream's. */
  async consumer(stream: string, cfg: ConsumerConfig & { durable_name: string }): Promise<void> {
    try {
      await this.jsm.consumers.info(stream, cfg.durable_name);
      // deliver_policy cannot change on an existing consumer (nor needs to): the rest is updated
      const update: Partial<ConsumerConfig> = { ...cfg };
      delete update.deliver_policy;
      await this.jsm.consumers.update(stream, cfg.durable_name, update);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await this.jsm.consumers.add(stream, cfg);
    }
  }

  async bucket(name: string, opts: Partial<KvOptions>): Promise<KV> {
    const kvm = new Kvm(this.nc);
    try {
      return await kvm.create(name, { ...opts, replicas: this.replicas });
    } catch (e) {
      // an existing bucket made with other replicas: the stream's own update moves it
      if (!(e instanceof Error) || !/already in use/i.test(e.message)) throw e;
      const stream = `KV_${name}`;
      const info = await this.jsm.streams.info(stream);
      await this.jsm.streams.update(stream, { ...info.config, num_replicas: this.replicas });
      return await kvm.open(name);
    }
  }
}

function isNotFound(e: unknown): boolean {
  return e instanceof Error && /not found/i.test(e.message);
}
