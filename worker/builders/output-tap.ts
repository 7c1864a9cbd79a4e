import type { BuildOutput } from './types.ts';

/**
 * Passes a builder's output through unchanged while a subclass reads each line for what it needs
 * (which step ran, which one failed, whether a registry was unreachable).
 */
export abstract class OutputTap implements BuildOutput {
  readonly masker: BuildOutput['masker'];
  readonly maxLine: number;

  constructor(private readonly inner: BuildOutput) {
    this.masker = inner.masker;
    this.maxLine = inner.maxLine;
  }

  line(stream: 'stdout' | 'stderr' | 'system', text: string): Promise<void> {
    this.observe(text);
    return this.inner.line(stream, text);
  }

  protected abstract observe(text: string): void;
}
