import { ErrorCode, FleetError, RebuildsReply, decodeWith, encode, subjects, type RebuildWaveView } from '../protocol/index.ts';
import type { FleetClient } from '../client/index.ts';
import type { RegistryEndpoint } from '../adapters/registry-client.ts';
import { republishBase } from './publish-base.ts';

const short = (d: string): string => `${d.slice(0, 19)}…`;

/** `fleet rebuilds [--base REF] [--json]`: the waves (base change, dependents, each one's state), newest first. Admin. */
export async function rebuildsCommand(client: FleetClient, opts: { base?: string; json: boolean }, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  let msg;
  try {
    msg = await client.nc.request(subjects.rebuildsApi, encode(opts.base === undefined ? {} : { base: opts.base }), { timeout: 10_000 });
  } catch (e) {
    throw new FleetError(ErrorCode.E_UNAVAILABLE, `no coordinator answered on ${subjects.rebuildsApi} (admins only): ${String(e)}`, undefined, { cause: e });
  }
  const reply = decodeWith(RebuildsReply, msg.data, 'coordinator reply', ErrorCode.E_INTERNAL);
  if (!reply.ok) throw FleetError.fromBody(reply.error);
  if (opts.json) {
    for (const w of reply.waves) out.write(`${JSON.stringify(w)}\n`);
    return 0;
  }
  if (reply.waves.length === 0) out.write('no rebuild waves\n');
  for (const w of reply.waves) out.write(renderWave(w));
  return 0;
}

export function renderWave(w: RebuildWaveView): string {
  const head = `${w.base} → ${short(w.to)}  noticed by ${w.noticedBy} at ${w.noticedAt}${w.closedAt === undefined ? '  (open)' : `  (ended ${w.closedAt})`}\n`;
  const rows = w.members.map((m) => [`  ${m.repository}:${m.tags.join(',')}`, m.tenant, `from ${short(m.from)}`, m.phase, m.rebuildId, m.error === undefined ? '' : `${m.error.code}: ${m.error.message}`]);
  const widths = rows.reduce<number[]>((acc, r) => r.map((c, i) => Math.max(acc[i] ?? 0, c.length)), []);
  return head + rows.map((r) => `${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}\n`).join('');
}

/** `fleet publish-base [--ref official/base:1] [--release TEXT]`: republish an official image with a real change (see publish-base.ts). */
export async function publishBaseCommand(registry: RegistryEndpoint, opts: { ref: string; release: string; json: boolean }, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { from, to } = await republishBase(registry, opts.ref, opts.release);
  out.write(opts.json ? `${JSON.stringify({ ref: `${registry.host}/${opts.ref}`, from, to })}\n` : `${registry.host}/${opts.ref}: ${from} → ${to} (signed; the registry tells the coordinator)\n`);
  return 0;
}
