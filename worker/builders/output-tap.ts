import { RecentLines } from './failure-taxonomy.ts';
import type { BuildOutput } from './types.ts';

/**
 * Passes a builder's output on while a subclass reads each line for what it needs (which step
 * ran, which one failed, whether a registry was unreachable) and may tidy it (`rewrite`).
 */
export abstract class OutputTap implements BuildOutput {
  readonly masker: BuildOutput['masker'];
  readonly maxLine: number;
  /** the last lines, for the failure taxonomy */
  readonly recent = new RecentLines();

  constructor(private readonly inner: BuildOutput) {
    this.masker = inner.masker;
    this.maxLine = inner.maxLine;
  }

  line(stream: 'stdout' | 'stderr' | 'system', text: string): Promise<void> {
    const tidy = this.rewrite(text);
    this.recent.push(tidy);
    this.observe(tidy);
    return this.inner.line(stream, tidy);
  }

  protected rewrite(text: string): string {
    return text;
  }

  protected abstract observe(text: string): void;
}

/** Output that goes nowhere (pulls, clean-up commands), keeping the masking settings. */
export function quietOutput(output: BuildOutput): BuildOutput {
  return { masker: output.masker, maxLine: output.maxLine, line: () => Promise.resolve() };
}
