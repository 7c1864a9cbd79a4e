import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheBin } from '../../adapters/environment.ts';
import { diesWithParent, KILL_GRACE_MS, type ChildHandle } from '../../adapters/child-process.ts';
import { waitFor } from '../../node/host.ts';

export interface NatsServer {
  /** the client URL; for a cluster, every member's, comma-separated (connectNats takes that) */
  url: string;
  port: number;
  /** `http://127.0.0.1:PORT` of the monitoring endpoints (/jsz, /varz) when started with `monitoring` */
  monitoringUrl: string | undefined;
  /** SIGKILL (or TERM) and start again on the same port and store: a restart under load */
  restart(opts?: { kill?: boolean; downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real nats-server with JetStream (file storage) on a free loopback port, admitting only the
 * users of `authorization` (a rendered `authorization { … }` block: see node/nats-authorization.ts).
 */
export async function startNatsServer(dir: string, opts: { authorization: string; tls?: { certFile: string; keyFile: string }; monitoring?: boolean }): Promise<NatsServer> {
  // With TLS every client must speak it (the server refuses plain connections): no downgrade.
  const tls = opts.tls === undefined ? '' : `tls {\n  cert_file: ${JSON.stringify(opts.tls.certFile)}\n  key_file: ${JSON.stringify(opts.tls.keyFile)}\n}\n`;
  return runNatsServer(dir, `${opts.authorization}${tls}`, { monitoring: opts.monitoring === true, port: -1, monitorPort: -1, args: [] });
}

/**
 * One nats-server process on loopback from a whole config file; `args` override what the file
 * says (ports, the cluster listen address), as nats-server's command line does. Port -1: a free one.
 */
export async function runNatsServer(
  dir: string,
  config: string,
  opts: { monitoring: boolean; port: number; monitorPort: number; args: readonly string[] },
): Promise<NatsServer> {
  await mkdir(dir, { recursive: true });
  const configFile = join(dir, 'nats-server.conf');
  await writeFile(configFile, config, { mode: 0o600 });
  let port = opts.port;
  // The HTTP monitoring port (/jsz, what KEDA's nats-jetstream scaler reads), on loopback, only when asked for.
  let monitorPort = opts.monitorPort;
  let child: ChildHandle | null = null;
  // a config with its own jetstream block (the cluster's) names its store; nats-server refuses both
  const ownsJetStream = /^jetstream\s*\{/m.test(config);

  const launch = async (): Promise<void> => {
    const portsDir = join(dir, `ports-${Date.now()}`);
    await mkdir(portsDir);
    const args = [
      '-c', configFile, ...(ownsJetStream ? [] : ['-js', '-sd', join(dir, 'jetstream')]), '-a', '127.0.0.1', '-p', String(port), '--ports_file_dir', portsDir,
      ...(opts.monitoring ? ['-m', String(monitorPort)] : []), ...opts.args,
    ];
    // The server's own log, kept across restarts: the first place to look when JetStream misbehaves.
    const serverLog = { file: join(dir, 'nats-server.log'), append: true } as const;
    // Dies with the fleet's process, even a kill -9'd one: no server left holding the port and store.
    const proc = execa(...diesWithParent(join(cacheBin(), 'nats-server'), args), { stdin: 'ignore', stdout: serverLog, stderr: serverLog, reject: false, forceKillAfterDelay: KILL_GRACE_MS });
    child = proc;
    const url = await waitFor('nats-server', async () => {
      if (proc.exitCode !== null) throw new Error(`nats-server exited ${proc.exitCode}`);
      const files = await readdir(portsDir);
      const f = files.find((n) => n.endsWith('.ports'));
      if (f === undefined) return null;
      const ports = JSON.parse(await readFile(join(portsDir, f), 'utf8')) as { nats?: string[]; monitoring?: string[] };
      const monitoring = ports.monitoring?.[0];
      if (opts.monitoring && monitoring === undefined) return null;
      if (monitoring !== undefined) monitorPort = Number(new URL(monitoring).port);
      return ports.nats?.[0] ?? null;
    });
    port = Number(new URL(url).port);
  };

  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    child = null;
    if (c === null) return;
    c.kill(signal);
    await c;
  };

  await launch();
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get monitoringUrl() {
      return opts.monitoring ? `http://127.0.0.1:${monitorPort}` : undefined;
    },
    async restart(o = {}) {
      await kill(o.kill === true ? 'SIGKILL' : 'SIGTERM');
      if (o.downMs !== undefined) await new Promise((r) => setTimeout(r, o.downMs));
      await launch();
    },
    stop: () => kill('SIGTERM'),
  };
}
