import { createHash } from 'node:crypto';
import { StorageType } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import { Dependent, ErrorCode, buckets, encode, parseWith, type BaseImage, type BuildRecord } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import { followedBases } from './base-name.ts';
import type { JetStreamResources } from '../jetstream-resources.ts';

/** A KV key token for any string: base64url is inside the key alphabet and has no dots. */
const token = (s: string): string => Buffer.from(s).toString('base64url');
const untoken = (t: string): string => Buffer.from(t, 'base64url').toString('utf8');

/** A dependent is one `(repository, tag stream)`: the same repository released under other tags is another. */
export function streamOf(repository: string, tags: readonly string[]): string {
  return `${repository}:${[...tags].sort().join(',')}`;
}

/** Short and stable, for derived ids. */
export const streamHash = (stream: string): string => createHash('sha256').update(stream).digest('hex').slice(0, 8);

const Followed = z.object({ bases: z.array(z.string()) });

/**
 * The dependency index, in a JetStream KV bucket (shared by coordinator replicas, survives them):
 *
 * - `on.<base>.<stream>` → the latest promoted build of that stream built on `base` (a tag name)
 *   and the digest it was built on; a change arrives as "this tag now names that digest", so the
 *   entries are found by name and compared by digest;
 * - `of.<stream>` → the bases that stream's latest build followed, so an entry for a base it no
 *   longer uses is removed (a Dockerfile that changed its FROM stops following the old one).
 *
 * Custom bases are streams like any other and bases of their own dependents: the graph has
 * depth without anything special here.
 */
export class DependencyIndex {
  private constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {}

  static async open(resources: JetStreamResources, log: Logger): Promise<DependencyIndex> {
    return new DependencyIndex(await resources.bucket(buckets.dependents, { history: 1, storage: StorageType.File }), log);
  }

  /** Records a promoted build as its stream's latest on each base it followed. Idempotent (a redelivered event writes the same). */
  async promoted(record: BuildRecord, bases: readonly BaseImage[], registryHost: string): Promise<void> {
    if (record.state.phase !== 'pushed') return;
    const { repository, tags } = record.request.image;
    const stream = streamOf(repository, tags);
    const followed = followedBases(bases, registryHost, repository, tags);
    const promotedAt = record.state.finishedAt;
    const previous = await this.kv.get(`of.${token(stream)}`);
    const before = previous === null || previous.operation !== 'PUT' ? [] : parseWith(Followed, previous.json(), 'dependency index entry', ErrorCode.E_INTERNAL).bases;
    for (const base of followed) {
      const key = `on.${token(base.name)}.${token(stream)}`;
      const existing = await this.read(key);
      // Promotions can be handled out of order (two builds of one stream): the later one wins.
      if (existing !== null && existing.promotedAt > promotedAt) continue;
      const entry: Dependent = {
        base: base.name, baseDigest: base.digest, repository, tags: [...tags], tenant: record.tenant, pool: record.request.pool,
        buildId: record.id, digest: record.state.digest, promotedAt,
      };
      await this.kv.put(key, encode(entry));
    }
    const names = followed.map((b) => b.name);
    for (const gone of before.filter((n) => !names.includes(n))) await this.kv.delete(`on.${token(gone)}.${token(stream)}`);
    await this.kv.put(`of.${token(stream)}`, encode({ bases: names }));
    this.log.debug({ buildId: record.id, stream, bases: names }, 'dependency index updated');
  }

  /** The bases the latest promoted build of `(repository, tags)` followed. */
  async basesOf(repository: string, tags: readonly string[]): Promise<string[]> {
    const entry = await this.kv.get(`of.${token(streamOf(repository, tags))}`);
    return entry === null || entry.operation !== 'PUT' ? [] : parseWith(Followed, entry.json(), 'dependency index entry', ErrorCode.E_INTERNAL).bases;
  }

  /** Every stream whose latest build used `base` (a tag name), with the digest it was built on. */
  async dependentsOf(base: string): Promise<Dependent[]> {
    const found: Dependent[] = [];
    for await (const key of await this.kv.keys(`on.${token(base)}.*`)) {
      const entry = await this.read(key);
      if (entry !== null) found.push(entry);
    }
    return found.sort((a, b) => a.repository.localeCompare(b.repository));
  }

  /** The tag names some promoted build follows: what the poller watches. */
  async watchedBases(): Promise<string[]> {
    const names = new Set<string>();
    for await (const key of await this.kv.keys('on.>')) {
      const part = key.split('.')[1];
      if (part !== undefined) names.add(untoken(part));
    }
    return [...names].sort();
  }

  private async read(key: string): Promise<Dependent | null> {
    const entry = await this.kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return null;
    return parseWith(Dependent, entry.json(), 'dependency index entry', ErrorCode.E_INTERNAL);
  }
}
