/**
 * Progress on stderr while a read runs: a live line per file on a terminal, one line
 * per finished file otherwise. Silent when no stream is given (--json).
 */
import type { ReadProgress } from "../reading/read-document.ts";

export class Progress {
  private live = false;
  private readonly tty: boolean;

  constructor(private readonly out: NodeJS.WriteStream | undefined) {
    this.tty = out?.isTTY === true;
  }

  note(text: string): void {
    this.clear();
    this.out?.write(text + "\n");
  }

  update(p: ReadProgress): void {
    if (!this.out) return;
    switch (p.kind) {
      case "step":
        return;
      case "file":
        if (this.tty && p.total) {
          const pct = Math.floor((p.offset / p.total) * 100);
          this.out.write(`\r  ${p.key.padEnd(5)} ${String(p.offset).padStart(7)} / ${p.total} bytes  ${String(pct).padStart(3)}%`);
          this.live = true;
        }
        return;
      case "file-done":
        this.clear();
        this.out.write(`  ${p.key.padEnd(5)} ${String(p.bytes).padStart(7)} bytes  ${String(p.apdus).padStart(3)} APDUs  ${p.ms.toFixed(0).padStart(5)} ms\n`);
        return;
      case "file-absent":
        this.clear();
        this.out.write(`  ${p.key.padEnd(5)} not present or not readable (${p.sw.toString(16).toUpperCase()})\n`);
        return;
      case "recovery":
        this.clear();
        this.out.write(`  recovered from ${p.recovery.cause} at ${p.recovery.file ?? "-"} offset ${p.recovery.offset ?? 0}: ${p.recovery.action}\n`);
        return;
    }
  }

  done(): void {
    this.clear();
  }

  private clear(): void {
    if (this.live && this.out) {
      this.out.write("\r\x1b[K");
      this.live = false;
    }
  }
}
