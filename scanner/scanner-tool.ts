import { stripVTControlCharacters } from 'node:util';
import { execa } from 'execa';
import type { z } from 'zod';
import { ErrorCode, FleetError, parseWith } from '../protocol/index.ts';
import { KILL_GRACE_MS, diesWithParent } from '../adapters/child-process.ts';

/**
 * One run of a scanner CLI (grype, trivy): it dies with the scanner, stops on `signal` with a
 * grace then a kill, and never rejects, so the caller judges the exit code as the tool defines it.
 */
export function runScannerTool(bin: string, args: string[], env: Record<string, string>, signal: AbortSignal) {
  const [file, argv] = diesWithParent(bin, args);
  return execa(file, argv, { env, extendEnv: true, stdin: 'ignore', reject: false, cancelSignal: signal, forceKillAfterDelay: KILL_GRACE_MS, maxBuffer: 256 * 1024 * 1024 });
}

type ToolRun = Awaited<ReturnType<typeof runScannerTool>>;

/** The last lines a tool printed, colours stripped, short enough to carry in an error. */
export function outputTail(text: string): string {
  return stripVTControlCharacters(text).trim().split('\n').slice(-5).join(' | ').slice(0, 2000);
}

/**
 * The JSON report a scan run printed, parsed with its schema. A run stopped, exiting non-zero
 * (neither tool is asked to fail on findings, so that means it could not scan) or printing no
 * valid report is E_SCAN_UNAVAILABLE: the gate fails closed, never passes on a missing answer.
 */
export function readReport<T extends z.ZodType>(tool: string, target: string, r: ToolRun, schema: T, signal: AbortSignal): z.infer<T> {
  if (signal.aborted || r.isCanceled) throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `${tool} on ${target} was stopped (timeout or shutdown)`);
  if (r.exitCode !== 0) throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `${tool} on ${target} exited ${r.exitCode ?? r.signal}: ${outputTail(r.stderr)}`);
  try {
    return parseWith(schema, JSON.parse(r.stdout), `${tool} report`, ErrorCode.E_SCAN_UNAVAILABLE);
  } catch (e) {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `${tool} on ${target} printed no usable report: ${e instanceof Error ? e.message : String(e)}`);
  }
}
