import type { LogMasker } from './log-masker.ts';

/**
 * Turns a byte stream into masked lines without ever holding more than `maxLine` characters
 * (plus one secret's length): a very long line is split into pieces, never dropped, and a cut
 * never falls inside a secret, so a secret split across two output chunks is still masked.
 */
export class LineSplitter {
  private buf = '';
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly masker: LogMasker,
    private readonly maxLine: number,
    private readonly emit: (line: string) => Promise<void>,
  ) {}

  async push(chunk: Uint8Array): Promise<void> {
    this.buf += this.decoder.decode(chunk, { stream: true });
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl !== -1 && nl <= this.maxLine) {
        await this.emit(this.masker.mask(this.buf.slice(0, nl).replace(/\r$/, '')));
        this.buf = this.buf.slice(nl + 1);
        continue;
      }
      // No newline within maxLine: cut, but only once enough follows to know no secret spans the cut.
      if (this.buf.length >= this.maxLine + this.masker.longest || nl !== -1) {
        const cut = this.masker.safeCut(this.buf, this.maxLine);
        await this.emit(this.masker.mask(this.buf.slice(0, cut)));
        this.buf = this.buf.slice(cut);
        continue;
      }
      return;
    }
  }

  async end(): Promise<void> {
    this.buf += this.decoder.decode();
    while (this.buf.length > 0) {
      const nl = this.buf.indexOf('\n');
      const cut = nl !== -1 && nl <= this.maxLine ? nl : this.masker.safeCut(this.buf, Math.min(this.maxLine, this.buf.length));
      await this.emit(this.masker.mask(this.buf.slice(0, cut)));
      this.buf = this.buf.slice(nl === cut ? cut + 1 : cut);
    }
  }
}
