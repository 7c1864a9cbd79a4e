import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { access, mkdir, readdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { execa } from 'execa';
import type { ChildHandle } from '../../adapters/child-process.ts';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import { prlimitPrefix, type BuildLimits } from './sandbox.ts';
import { cloneSeedRoot } from './buildkit-seed-clone.ts';
import { ReadyRoots } from './buildkit-ready-roots.ts';
import { TenantState } from './tenant-state.ts';

/**
 * The network namespace buildkitd (and so every RUN step: its OCI worker runs steps in the daemon's
 * own namespace) lives in. `slirp4netns`: rootlesskit's own namespace, outbound only (needs
 * /dev/net/tun). `pod`: rootlesskit `--net=host`, i.e. the namespace the worker itself runs in,
 * acceptable only where that is a pod's own namespace bounded by the pool's NetworkPolicy (a pod
 * has no /dev/net/tun); never chosen for the operator.
 */
export type BuildkitNetwork = 'slirp4netns' | 'pod';

/** The device slirp4netns needs; a Kubernetes pod does not get it. */
export const TUN_DEVICE = '/dev/net/tun';

/**
 * Refuses a sandbox network the node cannot give: without a tun device slirp4netns cannot start,
 * and falling back to the worker's own network would silently weaken RUN steps' isolation, so the
 * pool has to say `pod` itself.
 */
export function checkBuildkitNetwork(network: BuildkitNetwork, tunPresent: boolean): void {
  if (network === 'slirp4netns' && !tunPresent) {
    throw new FleetError(
      ErrorCode.E_INTERNAL,
      `BuildKit's sandbox network slirp4netns needs ${TUN_DEVICE}, which this node does not have; in a Kubernetes pod set "buildkitNetwork": "pod" (RUN steps then share the pod's network namespace, bounded by its NetworkPolicy)`,
    );
  }
}

/**
 * The worker's own rootless BuildKit daemon: `rootlesskit buildkitd --rootless` as the worker's
 * (unprivileged) user, state and unix socket under the worker's state dir. Started on first use,
 * restarted (and said so) when found dead; dies with the worker (pdeathsig).
 *
 * Its root (content store, snapshots, instruction cache, cache mounts) is the build's tenant's
 * (tenant-state.ts): a build of another tenant than the last restarts the daemon on that tenant's
 * root, so no tenant's build is served a cache entry another tenant's build made.
 */
export class BuildkitDaemon {
  private child: ChildHandle | null = null;
  private exited = true;
  /** the root the running daemon was started on */
  private root: string | null = null;
  private readonly tenants: TenantState;
  /**
   * The root a fresh worker's first tenant gets, made when the worker starts, with its daemon
   * started on it: a copy of the node's seed when there is one (one the node made ahead, taken
   * with a rename; else copied here, 0.3–0.9 s for the three official images), else empty. A
   * first build that comes after it is ready waits for neither the copy nor the daemon's start
   * (about 0.5 s: rootlesskit, slirp4netns, buildkitd); one that comes before waits for what is
   * left. True once made; the daemon may have failed to start, and starts again then. Later new
   * tenants copy the seed when they come.
   */
  private spare: Promise<boolean> | null = null;
  /** where the spare is: a name of this worker run's own, kept when a tenant takes it */
  private readonly spareRoot: string;
  /** the worker's BuildKit directory: socket, config, tenant roots, spares */
  private readonly dir: string;
  /** whether a tenant took the spare (its root is a link to it) */
  private spareTaken = false;
  /** whether the spare is a copy the node made ahead (ready roots), not this worker's own */
  private spareMadeAhead = false;
  /** the node's copies of the seed made ahead (absent without a seed) */
  private readonly readyRoots?: ReadyRoots;
  /** the ready root this worker makes for the next one, after its build */
  private refilling: Promise<void> | null = null;
  readonly socket: string;

  constructor(
    private readonly stateDir: string,
    private readonly env: Record<string, string>,
    private readonly insecureRegistries: readonly string[],
    private readonly log: Logger,
    private readonly limits: BuildLimits = {},
    private readonly network: BuildkitNetwork = 'slirp4netns',
    /** the node's BuildKit root with the platform's images unpacked (buildkit-seed.ts): each tenant's root starts as a copy */
    private readonly seed?: string,
  ) {
    // at construction, so a worker configured for a network its node lacks fails to start instead of failing every build
    checkBuildkitNetwork(network, existsSync(TUN_DEVICE));
    this.dir = join(stateDir, 'buildkit');
    this.socket = join(this.dir, 'buildkitd.sock');
    // The roots hold the build user's subordinate ids: removed from inside a user namespace of its own.
    // A tenant that took a spare has its root there: both go.
    this.tenants = new TenantState(join(this.dir, 'tenants'), async (dir) => {
      const spare = await spareOf(join(dir, 'root'), this.dir);
      await execa('rootlesskit', ['rm', '-rf', ...(spare === null ? [] : [spare]), dir], { env: this.env, extendEnv: false, stdin: 'ignore', reject: false });
    });
    this.spareRoot = join(this.dir, `spare-${randomUUID().slice(0, 8)}`);
    if (seed !== undefined) this.readyRoots = new ReadyRoots(seed, { env });
    this.spare = this.makeSpare();
  }

  /** the node's seed, when it is there to copy */
  private get seedRoot(): string | undefined {
    return this.seed !== undefined && existsSync(this.seed) ? this.seed : undefined;
  }

  private async makeSpare(): Promise<boolean> {
    await this.removeUntakenSpares();
    const made = await this.fillSpare();
    if (made) await this.start(this.spareRoot).catch((err: unknown) => this.log.warn({ err }, 'buildkitd did not start ahead; the first build starts it'));
    return made;
  }

  /** The spare's directory: a copy of the seed (the node's own made ahead, else this worker's), or empty without one. */
  private async fillSpare(): Promise<boolean> {
    const seed = this.seedRoot;
    if (seed === undefined) return mkdir(this.spareRoot, { recursive: true, mode: 0o700 }).then(() => true, () => false);
    this.spareMadeAhead = (await this.readyRoots?.take(this.spareRoot)) === true;
    return this.spareMadeAhead || cloneSeedRoot(seed, this.spareRoot, { env: this.env });
  }

  /** Spares earlier runs of the worker made and no tenant took: never served a build, removed. */
  private async removeUntakenSpares(): Promise<void> {
    const tenants = join(this.dir, 'tenants');
    const taken = new Set(await Promise.all((await readdir(tenants).catch(() => [])).map((name) => spareOf(join(tenants, name, 'root'), this.dir))));
    const untaken = (await readdir(this.dir).catch(() => [])).filter((name) => name.startsWith('spare-')).map((name) => join(this.dir, name)).filter((dir) => !taken.has(dir));
    if (untaken.length > 0) await execa('rootlesskit', ['rm', '-rf', ...untaken], { env: this.env, extendEnv: false, stdin: 'ignore', reject: false });
  }

  /**
   * A new tenant's root: the spare made at worker start, with the daemon running on it, when it is
   * still there (ROOT becomes a link to it: runc refuses a root file system reached through a
   * link, so the daemon keeps the spare's own path); else a copy of the node's seed, when there is one.
   * STARTED: when the build asked for its daemon (the wait for the spare counts).
   */
  private async newRoot(root: string, started: number, say: (line: string) => Promise<void>): Promise<void> {
    const seed = this.seedRoot;
    const spare = this.spare;
    this.spare = null;
    if (spare !== null && (await spare) && (await symlink(this.spareRoot, root).then(() => true, () => false))) {
      this.spareTaken = true;
      if (seed !== undefined) await say(`this tenant's BuildKit root starts from the node's BuildKit seed (the platform's images unpacked; ${this.spareMadeAhead ? 'a copy the node made ahead, ' : ''}ready in ${Math.round(performance.now() - started)} ms${this.root === this.spareRoot && !this.exited ? ', its daemon already running' : ''})`);
      return;
    }
    if (seed === undefined) return;
    if (await cloneSeedRoot(seed, root, { env: this.env })) {
      await say(`this tenant's BuildKit root starts from the node's BuildKit seed (the platform's images unpacked; ready in ${Math.round(performance.now() - started)} ms)`);
    } else {
      this.log.warn({ seed }, "could not copy the node's BuildKit seed; this tenant's root starts empty");
      await say("could not copy the node's BuildKit seed; this tenant's root starts empty");
    }
  }

  /** The socket address of a live daemon on the scope's root, starting (or restarting) it when needed. */
  async address(scope: string | undefined, say: (line: string) => Promise<void>): Promise<string> {
    const started = performance.now();
    // One daemon at a time: the spare's, still starting, is up (or failed) before another starts.
    await this.spare;
    const tenant = await this.tenants.dir(scope);
    const link = join(tenant.dir, 'root');
    if (tenant.created) await this.newRoot(link, started, say);
    // the spare the tenant took, or its own directory
    const root = (await spareOf(link, this.dir)) ?? link;
    const alive = this.child !== null && !this.exited;
    if (alive && this.root === root) return `unix://${this.socket}`;
    if (alive) {
      // a daemon started ahead on a spare no tenant took served no build: stopped without a word
      const served = this.root !== this.spareRoot || this.spareTaken;
      await this.stop();
      if (served) await say("buildkitd restarted on this build's tenant's own cache");
    } else if (this.child !== null) {
      this.log.warn('buildkitd had died; restarting it');
      await say('buildkitd had died; restarted it');
    }
    await this.start(root);
    return `unix://${this.socket}`;
  }

  private async start(root: string): Promise<void> {
    const dir = this.dir;
    await mkdir(join(dir, 'run'), { recursive: true, mode: 0o700 });
    await writeBuildkitdConfig(dir, this.insecureRegistries);
    this.root = root;
    const child = execa('setpriv', ['--pdeathsig', 'TERM', '--', ...buildkitdCommand(dir, this.socket, this.limits, this.network, root)], {
      env: { ...this.env, ...BUILDKITD_ENV, XDG_RUNTIME_DIR: join(dir, 'run') },
      extendEnv: false,
      stdin: 'ignore',
      stdout: { file: join(dir, 'buildkitd.log'), append: true },
      stderr: { file: join(dir, 'buildkitd.log'), append: true },
      reject: false,
      forceKillAfterDelay: 5_000,
    });
    this.child = child;
    this.exited = false;
    void child.then(() => {
      this.exited = true;
    });
    for (let i = 0; i < 100; i++) {
      if (this.exited) break;
      const ok = await access(this.socket).then(() => true, () => false);
      if (ok && (await execa('buildctl', ['--addr', `unix://${this.socket}`, 'debug', 'workers'], { env: this.env, extendEnv: false, reject: false })).exitCode === 0) {
        this.log.info({ socket: this.socket }, 'buildkitd ready');
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new FleetError(ErrorCode.E_INTERNAL, `buildkitd did not start (see ${join(dir, 'buildkitd.log')})`);
  }

  /**
   * After a build: the node's next fresh worker finds a copy of the seed made ahead, when this
   * one's is not being made already. In the background, and its failure only said: that worker copies the seed itself.
   */
  afterBuild(): void {
    if (this.readyRoots === undefined || this.refilling !== null || this.seedRoot === undefined) return;
    this.refilling = this.readyRoots.refill().catch((err: unknown) => this.log.warn({ err }, "could not make a copy of the node's BuildKit seed ahead; the next fresh worker copies it itself")).finally(() => {
      this.refilling = null;
    });
  }

  async stop(): Promise<void> {
    // a copy still under way finishes first: no process of the build user outlives the worker
    await Promise.all([this.spare, this.refilling]);
    if (this.child === null || this.exited) return;
    this.child.kill('SIGTERM');
    await this.child;
  }
}

/**
 * buildkitd clips a step's output past 2 MiB or 200 KiB/s (`[output clipped, log limit … reached]`);
 * the worker's own log caps (live lines and bytes, archived in S3) are the ones that apply, so
 * the daemon's are lifted.
 */
export const BUILDKITD_ENV: Readonly<Record<string, string>> = { BUILDKIT_STEP_LOG_MAX_SIZE: '-1', BUILDKIT_STEP_LOG_MAX_SPEED: '-1' };

/** Writes `DIR/buildkitd.toml`: the registries reached over plain HTTP (a loopback dev registry). */
export async function writeBuildkitdConfig(dir: string, insecureRegistries: readonly string[]): Promise<void> {
  await writeFile(join(dir, 'buildkitd.toml'), insecureRegistries.map((r) => `[registry."${r}"]\n  http = true\n  insecure = true\n`).join('\n'));
}

/**
 * The rootless daemon's argv, state under DIR (exported so the bench can start the same daemon by
 * hand). The daemon and every RUN step (buildkitd's OCI worker runs steps in the daemon's own
 * network namespace) live in rootlesskit's network namespace: slirp4netns gives it outbound
 * access only, `--disable-host-loopback` keeps the host's 127.0.0.1 (and 10.0.2.2, slirp's alias
 * for it) out of reach, and no port is published (`--port-driver=none`): the daemon is reached by
 * its unix socket only. NETWORK `pod` (see BuildkitNetwork) is the one path to `--net=host`: the
 * pod's namespace, whose loopback is the pod's own (no host loopback to hide). The daemon pulls nothing itself: the worker brings the bases in as OCI
 * layouts (base-import.ts) and pushes the result (oci-push.ts). `--otel-socket-path`: it would
 * otherwise try /run/buildkit, which an unprivileged user cannot create.
 */
export function buildkitdCommand(dir: string, socket: string, limits: BuildLimits = {}, network: BuildkitNetwork = 'slirp4netns', root = join(dir, 'root')): string[] {
  const net = network === 'pod' ? ['--net=host'] : ['--net=slirp4netns', '--disable-host-loopback'];
  return [
    'rootlesskit', ...net, '--port-driver=none', '--copy-up=/etc', `--state-dir=${join(dir, 'rootlesskit')}`,
    // Inside rootlesskit's user namespace: RUN steps are buildkitd's children and inherit its
    // rlimits (buildctl has none to give per step), and RLIMIT_NPROC counts this namespace only.
    ...prlimitPrefix(limits),
    'buildkitd', '--rootless', '--addr', `unix://${socket}`, '--otel-socket-path', join(dir, 'run', 'otel.sock'),
    '--root', root, '--config', join(dir, 'buildkitd.toml'),
  ];
}

/**
 * The spare root (directly under DIR) the tenant root ROOT links to, or null when ROOT is a
 * directory of its own (or absent).
 */
async function spareOf(root: string, dir: string): Promise<string | null> {
  const target = await readlink(root).catch(() => null);
  return target !== null && dirname(target) === dir && basename(target).startsWith('spare-') ? target : null;
}
