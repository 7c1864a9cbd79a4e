import type { BuildEvent, BuildView, LogLine } from '../protocol/index.ts';

/** Human output: colour and markers on a TTY, plain lines in a pipe. */
export class Renderer {
  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly tty = out.isTTY === true,
  ) {}

  private paint(code: string, s: string): string {
    return this.tty ? `\x1b[${code}m${s}\x1b[0m` : s;
  }

  line(l: LogLine): void {
    if (l.stream === 'system') this.out.write(`${this.paint('2', `» ${l.text}`)}\n`);
    else if (l.stream === 'stderr') this.out.write(`${this.paint('33', l.text)}\n`);
    else this.out.write(`${l.text}\n`);
  }

  event(e: BuildEvent): void {
    const mark = this.paint('1', '==>');
    switch (e.type) {
      case 'queued':
        this.out.write(`${mark} queued ${e.buildId}\n`);
        break;
      case 'started':
        this.out.write(`${mark} started on ${e.workerId} (attempt ${e.attempt})\n`);
        break;
      case 'verifying':
        this.out.write(`${mark} in quarantine ${e.quarantine}@${e.digest}; running the gates\n`);
        break;
      case 'verdict':
        for (const g of e.verdict.gates) {
          const colour = g.outcome === 'pass' ? '32' : g.outcome === 'block' ? '31' : '33';
          this.out.write(`${mark} gate ${g.gate}: ${this.paint(colour, g.outcome)} ${g.code}: ${g.reason}\n`);
        }
        this.out.write(`${mark} ${e.verdict.promoted ? 'promoting' : this.paint('31', 'not promoted: a gate blocks')}\n`);
        break;
      case 'pushed':
        for (const r of e.references) this.out.write(`${mark} ${this.paint('32', 'pushed')} ${r}@${e.digest}\n`);
        break;
      case 'failed':
        this.out.write(`${mark} ${this.paint('31', 'failed')} ${e.error.code}: ${e.error.message}\n`);
        break;
      case 'cancelled':
        this.out.write(`${mark} ${this.paint('35', 'cancelled')}\n`);
        break;
      case 'expired':
        this.out.write(`${mark} ${this.paint('35', 'expired')}: no worker started it within ${e.queueTtlSeconds}s\n`);
        break;
      case 'rebuild':
        this.out.write(`${mark} rebuild of ${e.rebuildOf.buildId}: ${e.rebuildOf.reason}\n`);
        break;
      case 'vulnerable':
        // after promotion: a rescan against a newer DB found what would block now (the tags stay)
        this.out.write(`${mark} ${this.paint('31', 'vulnerable')} ${e.references.join(', ')}: ${e.findings.map((f) => `${f.id} ${f.severity} in ${f.package}`).join(', ')} (${e.scanner.name} DB ${e.scanner.dbBuilt})\n`);
        break;
    }
  }

  status(b: BuildView): void {
    const s = b.state;
    const lines = [`build ${b.id}: ${s.phase}`, `image: ${b.request.image.repository}:${b.request.image.tags.join(',')}`];
    if (s.phase === 'running') lines.push(`worker: ${s.workerId} (attempt ${s.attempt}) since ${s.startedAt}`);
    if (s.phase === 'verifying') lines.push(`gates reading ${s.quarantine}@${s.digest} since ${s.startedAt}`);
    if (s.phase === 'pushed') {
      lines.push(...s.references.map((r) => `pushed: ${r}@${s.digest}`));
      for (const g of s.verdict?.gates ?? []) lines.push(`gate ${g.gate}: ${g.outcome} ${g.code}: ${g.reason}`);
    }
    if (s.phase === 'failed') {
      lines.push(`error: ${s.error.code}: ${s.error.message}`);
      if (s.error.details?.step !== undefined) lines.push(`step: ${s.error.details.step}`);
      for (const g of s.error.details?.gates ?? []) lines.push(`gate ${g.gate} blocks: ${g.code}: ${g.reason}`);
      if (s.error.details?.logTail !== undefined) lines.push('log tail:', ...s.error.details.logTail.map((t) => `  ${t}`));
    }
    this.out.write(`${lines.join('\n')}\n`);
  }
}
