/**
 * `fleet`: submit builds, follow their logs, read their status, run a local fleet.
 * Every command takes --json for machines; exit codes are in exit-codes.ts.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { startLocalFleet, type LocalFleet, type LocalFleetOptions } from '../deploy/local/fleet.ts';
import { BUILDER_KINDS, Role, ErrorCode, ExitCode, exitCodeForError, FleetError, isFleetError, toFleetError, type BuildEvent, type BuildView, type LogLine, type StandardSpecInput } from '../protocol/index.ts';
import { fleetEnvironment } from '../adapters/environment.ts';
import { createLogger } from '../adapters/logger.ts';
import { FleetClient, auditTrail, storedEvents } from '../client/index.ts';
import { exitCodeForPhase } from './exit-codes.ts';
import { clearLocalFleet, readLocalFleet, writeLocalFleet } from './local-state.ts';
import { Renderer } from './render.ts';
import { RescanReply, decodeWith, encode, subjects } from '../protocol/index.ts';
import { publishBaseCommand, rebuildsCommand } from './rebuilds.ts';
import { provenanceCommand } from './provenance.ts';
import { readDeliveries } from '../coordinator/notifications/deliveries-log.ts';

const USAGE = `usage:
  fleet up [--workers N] [--builders LIST] [--state-dir DIR]
                                                  run a local fleet in the foreground; LIST adds a pool
                                                  per extra builder (buildkit, kaniko) beside buildah's default pool
  fleet demo                                      local fleet + official base + a sample two-stage app
  fleet submit DIR --repo REPO --tag TAG [--tag TAG...] [--id ID] [--pool POOL] [--follow]
               [--label K=V...]                   and one of the three ways to get an image:
      custom:      [--file Dockerfile] [--target STAGE] [--build-arg K=V...] [--secret ID...]
      custom base: --custom-base (REPO under bases/) [--file ...] [--build-arg ...]
      standard:    --standard RUNTIME --env ENV [--option ID...] [--service ID=ENV[,ENV]...]
                   [--base bases/NAME:TAG]        (the platform renders the Dockerfile)
  fleet status ID
  fleet scan ID                                   the vulnerabilities gate's result: scanner, DB build time, findings, allowlist
  fleet scan --rescan-released                    rescan every released image now (admin; also automatic when the DB moves)
  fleet provenance REF|DIGEST|ID [--key PUB] [--repo REPO] [--registry HOST] [--registry-auth FILE] [--insecure]
                                                  the image's signed provenance, verified with the platform public key
  fleet logs [-f] ID
  fleet dlq ls | show ID | retry ID | drop ID       jobs parked after exhausting their deliveries
  fleet workers                                   live workers: pool, builder, state, current build
  fleet cancel ID                                 cancel a queued or running build (no-op once ended)
  fleet tokens create --tenant T --role submitter|reader|admin --name NAME [--ttl SECONDS]
  fleet tokens ls [--tenant T] | revoke ID        HTTP API tokens (admin); a token is shown once
  fleet audit [--tenant T]                        who asked for what, accepted or refused (admin)
  fleet rebuilds [--base REF]                     rebuild waves after a base moved: the change, each dependent and its state (admin)
  fleet publish-base [--ref official/base:1] [--release TEXT] [--registry HOST]
                                                  republish an official image with a small real change, signed (starts a wave)
  fleet notifications [--tenant T]                webhook deliveries: each attempt, its outcome and HTTP status (admin)
common: --nats URL (default: $FLEET_NATS_URL with $FLEET_NATS_NKEY and $FLEET_NATS_USER, else the fleet started by \`fleet up\`), --json
exit codes: 0 pushed, 1 failed, 2 invalid, 3 cancelled, 4 expired, 5 in progress, 6 unavailable, 7 not found, 8 conflict,
            9 not authenticated, 10 forbidden`;

const common = {
  nats: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up':
      return up(rest);
    case 'demo':
      return demo(rest);
    case 'submit':
      return submit(rest);
    case 'status':
      return status(rest);
    case 'logs':
      return logs(rest);
    case 'cancel':
      return cancel(rest);
    case 'workers':
      return workers(rest);
    case 'dlq':
      return dlq(rest);
    case 'tokens':
      return tokens(rest);
    case 'audit':
      return audit(rest);
    case 'scan':
      return scan(rest);
    case 'rebuilds': {
      const { values } = parse(rest, { base: { type: 'string' } });
      return withClient(values.nats, (client) => rebuildsCommand(client, { ...(values.base === undefined ? {} : { base: values.base }), json: values.json }));
    }
    case 'publish-base': {
      const { values } = parse(rest, { ref: { type: 'string' }, release: { type: 'string' }, registry: { type: 'string' } });
      const host = values.registry ?? (await readLocalFleet())?.registry;
      if (host === undefined) throw new UsageError('no local fleet: name the registry with --registry HOST');
      const loopback = /^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host);
      return publishBaseCommand({ host, insecure: loopback }, { ref: values.ref ?? 'official/base:1', release: values.release ?? new Date().toISOString(), json: values.json });
    }
    case 'provenance':
      return provenance(rest);
    case 'notifications':
      return notifications(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? ExitCode.INVALID : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function parse<O extends ParseArgsConfig['options']>(args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/**
 * A fleet named by --nats or FLEET_NATS_URL uses S3 from FLEET_S3_* and the AWS default
 * credential chain; otherwise the fleet `fleet up` started on this machine.
 */
async function connect(nats: string | undefined): Promise<FleetClient> {
  const env = fleetEnvironment();
  const url = nats ?? env.FLEET_NATS_URL;
  if (url !== undefined) {
    const local = await readLocalFleet();
    const credentials =
      env.FLEET_NATS_NKEY !== undefined && env.FLEET_NATS_USER !== undefined
        ? { seedFile: env.FLEET_NATS_NKEY, user: env.FLEET_NATS_USER }
        : local !== null && local.natsUrl === url
          ? local.natsCredentials
          : null;
    if (credentials === null) throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'set FLEET_NATS_NKEY (an nkey seed file) and FLEET_NATS_USER (admin or tenant-<name>) to reach that fleet');
    if (env.FLEET_S3_BUCKET === undefined) {
      if (local !== null && local.natsUrl === url) return FleetClient.connect(url, credentials, local.s3);
      throw new FleetError(ErrorCode.E_UNAVAILABLE, 'set FLEET_S3_BUCKET (and FLEET_S3_ENDPOINT, FLEET_S3_REGION, FLEET_S3_PATH_STYLE=1 as needed) to upload contexts');
    }
    return FleetClient.connect(url, credentials, {
      bucket: env.FLEET_S3_BUCKET,
      ...(env.FLEET_S3_ENDPOINT === undefined ? {} : { endpoint: env.FLEET_S3_ENDPOINT }),
      ...(env.FLEET_S3_REGION === undefined ? {} : { region: env.FLEET_S3_REGION }),
      forcePathStyle: env.FLEET_S3_PATH_STYLE ?? false,
    });
  }
  const local = await readLocalFleet();
  if (local === null) throw new FleetError(ErrorCode.E_UNAVAILABLE, 'no fleet to talk to: start one with `npx fleet up`, or pass --nats URL');
  return FleetClient.connect(local.natsUrl, local.natsCredentials, local.s3);
}

/** Runs one command against the fleet and always closes the connection. */
async function withClient<T>(nats: string | undefined, run: (client: FleetClient) => Promise<T>): Promise<T> {
  const client = await connect(nats);
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}

/** The standard-build part of `fleet submit`, or null when --standard is not given. */
function standardSpec(values: { standard?: string; env?: string; option?: string[]; service?: string[]; base?: string }): StandardSpecInput | null {
  if (values.standard === undefined) {
    if (values.env !== undefined || values.option !== undefined || values.service !== undefined || values.base !== undefined) {
      throw new UsageError('--env, --option, --service and --base belong to a standard build (--standard RUNTIME)');
    }
    return null;
  }
  if (values.env === undefined) throw new UsageError('a standard build needs --env ENV (the environment the image is for)');
  const services: Record<string, string[]> = {};
  for (const [id, envs] of Object.entries(keyValues(values.service, '--service'))) services[id] = envs.split(',').filter((e) => e !== '');
  return {
    runtime: values.standard,
    environment: values.env,
    options: values.option ?? [],
    services,
    ...(values.base === undefined ? {} : { base: values.base }),
  };
}

function keyValues(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got "${kv}"`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** Prints a build's log and events, human or JSON lines, and returns the final record. */
async function stream(client: FleetClient, id: string, json: boolean, follow: boolean, signal: AbortSignal): Promise<BuildView> {
  const render = new Renderer(process.stdout);
  const handlers = json
    ? {
        line: (l: LogLine) => process.stdout.write(`${JSON.stringify({ kind: 'log', ...l })}\n`),
        event: (e: BuildEvent) => process.stdout.write(`${JSON.stringify({ kind: 'event', ...e })}\n`),
      }
    : { line: (l: LogLine) => render.line(l), event: (e: BuildEvent) => render.event(e) };
  return client.logs(id, handlers, { follow, signal });
}

function interrupted(): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  return ac.signal;
}

async function submit(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    repo: { type: 'string' },
    tag: { type: 'string', multiple: true },
    id: { type: 'string' },
    file: { type: 'string', short: 'f' },
    target: { type: 'string' },
    'build-arg': { type: 'string', multiple: true },
    label: { type: 'string', multiple: true },
    pool: { type: 'string' },
    secret: { type: 'string', multiple: true },
    'custom-base': { type: 'boolean', default: false },
    standard: { type: 'string' },
    env: { type: 'string' },
    option: { type: 'string', multiple: true },
    service: { type: 'string', multiple: true },
    base: { type: 'string' },
    follow: { type: 'boolean', default: false },
  });
  const [dir] = positionals;
  const { repo, tag: tags } = values;
  if (dir === undefined || repo === undefined || tags === undefined) {
    throw new UsageError('submit needs DIR, --repo and at least one --tag');
  }
  const standard = standardSpec(values);
  if (standard !== null && values['custom-base']) throw new UsageError('--standard and --custom-base are two different ways; pick one');
  return withClient(values.nats, async (client) => {
  const dockerfile = standard === null ? (values.file ?? 'Dockerfile') : null;
  const context = await client.uploadContext(dir, dockerfile);
  const accepted = await client.submit({
    id: values.id ?? crypto.randomUUID(),
    kind: standard !== null ? 'standard' : values['custom-base'] ? 'custom-base' : 'custom',
    ...(standard === null ? {} : { standard }),
    context: { digest: context.digest },
    ...(dockerfile === null ? {} : { dockerfile }),
    ...(values.secret === undefined ? {} : { secrets: values.secret }),
    image: { repository: repo, tags },
    buildArgs: keyValues(values['build-arg'], '--build-arg'),
    labels: keyValues(values.label, '--label'),
    ...(values.target === undefined ? {} : { target: values.target }),
    ...(values.pool === undefined ? {} : { pool: values.pool }),
  });
  if (values.json) process.stdout.write(`${JSON.stringify({ kind: 'accepted', ...accepted, context })}\n`);
  else process.stderr.write(`${accepted.created ? 'submitted' : 'already known'}: ${accepted.build.id} (${accepted.build.state.phase})\n`);
  if (!values.follow) return ExitCode.PUSHED;
  const final = await stream(client, accepted.build.id, values.json, true, interrupted());
  return finish(final, values.json);
  });
}

function finish(build: BuildView, json: boolean): number {
  if (json) process.stdout.write(`${JSON.stringify({ kind: 'status', build })}\n`);
  else if (build.state.phase === 'failed' && build.state.error.details?.step !== undefined) {
    process.stderr.write(`failed step: ${build.state.error.details.step}\n`);
  }
  return exitCodeForPhase(build.state.phase);
}

async function status(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  const id = positionals[0];
  if (id === undefined) throw new UsageError('status needs a build ID');
  return withClient(values.nats, async (client) => {
  const build = await client.status(id);
  if (values.json) process.stdout.write(`${JSON.stringify(build)}\n`);
  else new Renderer(process.stdout).status(build);
  return exitCodeForPhase(build.state.phase);
  });
}

async function logs(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { follow: { type: 'boolean', short: 'f', default: false } });
  const id = positionals[0];
  if (id === undefined) throw new UsageError('logs needs a build ID');
  return withClient(values.nats, async (client) => {
  const final = await stream(client, id, values.json, values.follow, interrupted());
  if (values.json) process.stdout.write(`${JSON.stringify({ kind: 'status', build: final })}\n`);
  return exitCodeForPhase(final.state.phase);
  });
}

async function cancel(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  const id = positionals[0];
  if (id === undefined) throw new UsageError('cancel needs a build ID');
  return withClient(values.nats, async (client) => {
  const result = await client.cancel(id);
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else if (result.cancelled) process.stdout.write(`cancelled ${id}\n`);
  else process.stdout.write(`nothing to cancel: ${id} already ended (${result.build.state.phase})\n`);
  return 0;
  });
}

async function dlq(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  const [op, id] = positionals;
  if (op !== 'ls' && op !== 'show' && op !== 'retry' && op !== 'drop') throw new UsageError('dlq takes ls, show ID, retry ID or drop ID');
  if (op !== 'ls' && id === undefined) throw new UsageError(`dlq ${op} needs a build ID`);
  return withClient(values.nats, async (client) => {
  const out = await client.dlq(op === 'ls' || op === 'show' || id === undefined ? { op: 'ls' } : { op, buildId: id });
  if (op === 'show') {
    const letter = out.letters.find((l) => l.buildId === id);
    if (letter === undefined) throw new FleetError(ErrorCode.E_NOT_FOUND, `no dead letter for ${id ?? ''}`);
    process.stdout.write(values.json ? `${JSON.stringify(letter)}\n` : `${JSON.stringify({ ...letter, job: JSON.parse(letter.job) as unknown }, null, 2)}\n`);
  } else if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  else if (op === 'ls') for (const l of out.letters) process.stdout.write(`${l.buildId}  ${l.pool}  ${l.deliveries} deliveries  ${l.parkedAt}  ${l.lastError}\n`);
  else if (op === 'retry') process.stdout.write(`retried ${id ?? ''} as ${out.retriedAs ?? '?'}\n`);
  else process.stdout.write(`dropped ${id ?? ''}\n`);
  return 0;
  });
}

async function tokens(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { tenant: { type: 'string' }, role: { type: 'string' }, name: { type: 'string' }, ttl: { type: 'string' } });
  const [op, id] = positionals;
  return withClient(values.nats, async (client) => {
    if (op === 'create') {
      if (values.tenant === undefined || values.role === undefined || values.name === undefined) throw new UsageError('tokens create needs --tenant, --role and --name');
      const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
      if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1)) throw new UsageError('--ttl takes whole seconds');
      const role = Role.safeParse(values.role);
      if (!role.success) throw new UsageError('--role is submitter, reader or admin');
      const out = await client.tokens({ op: 'create', tenant: values.tenant, role: role.data, name: values.name, ...(ttl === undefined ? {} : { ttlSeconds: ttl }) });
      if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`);
      else process.stdout.write(`${out.token ?? ''}\n(shown once: store it now; id ${out.tokens[0]?.id ?? '?'})\n`);
      return 0;
    }
    if (op === 'revoke') {
      if (id === undefined) throw new UsageError('tokens revoke needs a token ID');
      await client.tokens({ op: 'revoke', id });
      process.stdout.write(`revoked ${id}\n`);
      return 0;
    }
    if (op !== 'ls') throw new UsageError('tokens takes create, ls or revoke ID');
    const out = await client.tokens(values.tenant === undefined ? { op: 'list' } : { op: 'list', tenant: values.tenant });
    if (values.json) process.stdout.write(`${JSON.stringify(out.tokens)}\n`);
    else for (const t of out.tokens) process.stdout.write(`${t.id}  ${t.tenant}  ${t.role}  ${t.name}  ${t.createdAt}${t.revokedAt === undefined ? '' : `  revoked ${t.revokedAt}`}${t.expiresAt === undefined ? '' : `  expires ${t.expiresAt}`}\n`);
    return 0;
  });
}

/** The vulnerabilities gate of a build's latest verdict (the scan report's summary the coordinator kept). */
async function scan(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { 'rescan-released': { type: 'boolean', default: false } });
  if (values['rescan-released']) {
    return withClient(values.nats, async (client) => {
      const reply = decodeWith(RescanReply, (await client.nc.request(subjects.rescanApi, encode({ reason: 'fleet scan --rescan-released' }), { timeout: 10_000 })).data, 'rescan reply');
      if (!reply.ok) throw FleetError.fromBody(reply.error);
      process.stdout.write(values.json ? `${JSON.stringify(reply)}\n` : reply.started ? 'rescanning every released image (each new blocking finding: a vulnerable event and a notification)\n' : 'a rescan is running; it runs once more when it ends\n');
      return 0;
    });
  }
  const id = positionals[0];
  if (id === undefined) throw new UsageError('scan needs a build ID');
  return withClient(values.nats, async (client) => {
    await client.status(id);
    const verdicts = (await storedEvents(client.nc, id)).filter((e): e is Extract<BuildEvent, { type: 'verdict' }> => e.type === 'verdict');
    const gate = verdicts.at(-1)?.verdict.gates.find((g) => g.gate === 'vulnerabilities');
    if (values.json) {
      process.stdout.write(`${JSON.stringify(gate ?? null)}\n`);
      return gate === undefined ? ExitCode.NOT_FOUND : 0;
    }
    if (gate === undefined) {
      process.stderr.write(`${id}: no vulnerabilities verdict (not gated yet, or the scan was unavailable: see fleet status ${id})\n`);
      return ExitCode.NOT_FOUND;
    }
    process.stdout.write(`${gate.outcome} ${gate.code}: ${gate.reason}\n`);
    if (gate.scan !== undefined) {
      const s = gate.scan;
      process.stdout.write(`scanner ${s.scanner.name} ${s.scanner.version}, DB built ${s.scanner.dbBuilt}, ${s.total} findings\n`);
      for (const f of s.blocking) process.stdout.write(`  BLOCKS  ${f.id}  ${f.severity}  ${f.package} ${f.installed}  ${f.fixed === undefined ? f.fixState : `fixed in ${f.fixed}`}\n`);
      for (const a of s.allowlisted) process.stdout.write(`  ${a.expired ? 'EXPIRED' : 'ALLOWED'} ${a.cve}  ${a.package}  until ${a.expires}  by ${a.addedBy}: ${a.reason}\n`);
    }
    return 0;
  });
}

/** Every recorded webhook delivery attempt (coordinator/notifications), oldest first. */
async function notifications(args: string[]): Promise<number> {
  const { values } = parse(args, { tenant: { type: 'string' } });
  return withClient(values.nats, async (client) => {
    const deliveries = await readDeliveries(client.nc, values.tenant);
    if (values.json) process.stdout.write(`${JSON.stringify(deliveries)}\n`);
    else {
      for (const d of deliveries) {
        const how = [d.httpStatus === undefined ? '' : `HTTP ${d.httpStatus}`, d.error ?? ''].filter((x) => x !== '').join(': ');
        process.stdout.write(`${d.at}  ${d.tenant}  ${d.type}  ${d.subject}  attempt ${d.attempt}  ${d.outcome}${how === '' ? '' : `  ${how}`}  ${d.id}\n`);
      }
    }
    return 0;
  });
}

async function provenance(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    key: { type: 'string' },
    repo: { type: 'string' },
    registry: { type: 'string' },
    'registry-auth': { type: 'string' },
    insecure: { type: 'boolean', default: false },
  });
  const target = positionals[0];
  if (target === undefined) throw new UsageError('provenance needs an image reference, a digest (with --repo) or a build ID');
  return provenanceCommand(
    target,
    { json: values.json, key: values.key, repo: values.repo, registry: values.registry, registryAuth: values['registry-auth'], insecure: values.insecure },
    // Only a build id needs the fleet; a reference or digest is verified from the registry alone.
    { build: (id) => withClient(values.nats, (client) => client.status(id)), localRegistry: async () => (await readLocalFleet())?.registry },
    process.stdout,
  );
}

async function audit(args: string[]): Promise<number> {
  const { values } = parse(args, { tenant: { type: 'string' } });
  return withClient(values.nats, async (client) => {
    const entries = await auditTrail(client.nc, values.tenant);
    if (values.json) process.stdout.write(`${JSON.stringify(entries)}\n`);
    else for (const e of entries) process.stdout.write(`${e.at}  ${e.tenant}  ${e.who}  ${e.action}  ${e.target}  ${e.verdict}${e.code === undefined ? '' : `  ${e.code}: ${e.reason ?? ''}`}\n`);
    return 0;
  });
}

async function workers(args: string[]): Promise<number> {
  const { values } = parse(args, {});
  return withClient(values.nats, async (client) => {
  const list = await client.workers();
  if (values.json) process.stdout.write(`${JSON.stringify(list)}\n`);
  else {
    const rows = list.map((w) => [w.workerId, w.pool, w.builder, w.state, w.buildId ?? '-', w.since, w.version]);
    const head = ['WORKER', 'POOL', 'BUILDER', 'STATE', 'BUILD', 'SINCE', 'VERSION'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    for (const r of [head, ...rows]) process.stdout.write(`${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}\n`);
  }
  return 0;
  });
}

async function startFleet(opts: LocalFleetOptions): Promise<{ fleet: LocalFleet; stop: () => Promise<void> }> {
  const log = createLogger('fleet', { level: fleetEnvironment().FLEET_LOG_LEVEL ?? 'warn' });
  process.stderr.write('starting a local fleet (nats-server, registry, coordinator, rootless worker)...\n');
  // The console the coordinator serves at /ui/, on a machine where `npm run ui:build` never ran;
  // without it (no dev dependencies, say) /ui/ answers 503 saying how to build it.
  const { buildUiIfMissing } = await import('../ui/build.ts');
  await buildUiIfMissing().then(
    (built) => void (built && process.stderr.write('built the web console (ui/dist)\n')),
    (e: unknown) => void process.stderr.write(`the web console could not be built (${e instanceof Error ? e.message : String(e)}): /ui/ answers 503 until \`npm run ui:build\` runs\n`),
  );
  const fleet = await startLocalFleet(opts, log);
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => (stopping ??= fleet.stop());
  let firstSignalAt = 0;
  const onSignal = (): void => {
    // Under `npx`, one Ctrl-C arrives twice (from the terminal and forwarded by npm): only a
    // second press, a moment later, means "exit at once".
    if (firstSignalAt !== 0) {
      if (Date.now() - firstSignalAt > 1_000) process.exit(130);
      return;
    }
    firstSignalAt = Date.now();
    process.stderr.write('\nstopping: draining workers and the coordinator (Ctrl-C again to exit at once)\n');
    void stop().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { fleet, stop };
}

async function up(args: string[]): Promise<number> {
  const { values } = parse(args, { workers: { type: 'string' }, builders: { type: 'string' }, 'state-dir': { type: 'string' } });
  const workers = values.workers === undefined ? 1 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1) throw new UsageError('--workers takes a whole number >= 1');
  const builders = (values.builders ?? 'buildah').split(',').map((b) => b.trim());
  const unknown = builders.filter((b) => !(BUILDER_KINDS as readonly string[]).includes(b));
  if (unknown.length > 0) throw new UsageError(`--builders: unknown builder ${unknown.join(', ')} (one of ${BUILDER_KINDS.join(', ')})`);
  // buildah serves the `default` pool; every other builder gets a pool named after it.
  const extra = BUILDER_KINDS.filter((b) => b !== 'buildah' && builders.includes(b));
  const { fleet } = await startFleet({ workers, sharedImageStore: true, buildkitSeed: builders.includes('buildkit'), registryNotifications: true, coordinator: { pools: [...extra] }, ...(values['state-dir'] === undefined ? {} : { stateDir: values['state-dir'] }) });
  for (const builder of extra) await fleet.addWorker({ pool: builder, builder });
  const info = { natsUrl: fleet.nats.url, httpUrl: fleet.coordinator.httpUrl, registry: fleet.registry.host, pid: process.pid };
  await writeLocalFleet({ ...info, s3: fleet.s3.options, natsCredentials: fleet.client.credentials });
  process.once('exit', () => void clearLocalFleet());
  if (values.json) process.stdout.write(`${JSON.stringify({ kind: 'up', ...info, stateDir: fleet.stateDir })}\n`);
  else {
    process.stdout.write(
      [
        'fleet is up (Ctrl-C to stop)',
        `  nats:      ${info.natsUrl}`,
        `  http api:  ${info.httpUrl}/v1/builds`,
        `  registry:  ${info.registry}  (signed: ${Object.keys(fleet.officialImages).join(', ')})`,
        `  workers:   ${fleet.workers.map((w) => `${w.workerId} (${w.pool})`).join(', ')} (logs in ${fleet.stateDir}/workers)`,
        `  identity:  NATS is authenticated (nkeys in ${fleet.stateDir}/nats-credentials); this CLI is the platform admin`,
        '  tenants:   edit ' + fleet.tenancyPath + ' (reloaded live), then give a release system a token:',
        '             npx fleet tokens create --tenant NAME --role submitter --name ci   (HTTP: Authorization: Bearer <token>)',
        'try: npx fleet submit test/fixtures/apps/two-stage --repo app/demo --tag 1 --follow',
        '     npx fleet submit test/fixtures/apps/java-hooks --standard java17 --env test --option wget --service jacoco=test --repo app/hooks --tag 1 --follow',
        '',
      ].join('\n'),
    );
  }
  await new Promise<never>(() => undefined);
  return 0;
}

async function demo(args: string[]): Promise<number> {
  const { values } = parse(args, {});
  const { fleet, stop } = await startFleet({});
  try {
    const app = new URL('../test/fixtures/apps/two-stage', import.meta.url).pathname;
    process.stderr.write(`official images (signed): ${Object.keys(fleet.officialImages).join(', ')} in ${fleet.registry.host}\nsubmitting ${app}\n`);
    const { digest } = await fleet.client.uploadContext(app);
    const id = `demo-${Date.now()}`;
    await fleet.client.submit({ id, context: { digest }, image: { repository: 'app/demo', tags: ['1'] } });
    const final = await stream(fleet.client, id, values.json, true, interrupted());
    if (final.state.phase === 'pushed' && !values.json) {
      process.stdout.write(`\n${final.state.references[0] ?? ''}@${final.state.digest}\n`);
    }
    return finish(final, values.json);
  } finally {
    await stop();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`fleet: ${e.message}\n${USAGE}\n`);
      process.exit(ExitCode.INVALID);
    }
    const err = toFleetError(e);
    const json = process.argv.includes('--json');
    if (json) process.stdout.write(`${JSON.stringify({ kind: 'error', error: err.toBody() })}\n`);
    else {
      process.stderr.write(`fleet: ${err.code}: ${err.message}\n`);
      for (const i of err.details?.issues ?? []) process.stderr.write(`  ${i.path}: ${i.message}\n`);
    }
    process.exit(isFleetError(e) ? exitCodeForError(err.code) : ExitCode.FAILED);
  },
);
