/**
 * What the reading strategy has learnt about one card in one reader: the largest
 * READ BINARY that works, whether extended length and SFI reads pass. Probed once per
 * card and kept, so later files do not pay for the discovery again.
 *
 * On a flaky RF link the block size also adapts: after LOSSES_TO_SHRINK link losses
 * in a row at one size (no verified block between them) the next reads use one rung less (a
 * shorter frame is on air for less time and a loss costs less to re-read); after
 * SUCCESSES_TO_GROW verified blocks in a row it grows back one rung, never above what the card
 * accepted. Extended-length reads count as the top rung: they are suspended first.
 */

/**
 * Short-Le block sizes tried after a 6700 (wrong length), largest first. 231 is the
 * most plaintext a 3DES-protected short response can carry (field notes); documents
 * seen rejecting large Le: Ukraine (≤ 192), Spanish ID (6282 at 256), Russian (6B00).
 * The lower rungs follow dmrtd's ladder.
 */
export const SHORT_BLOCK_LADDER = [231, 223, 192, 160, 128, 112, 96, 64, 32, 16] as const;

export type Tri = "unknown" | "yes" | "no";

/** Link losses in a row at one block size before shrinking. */
export const LOSSES_TO_SHRINK = 2;
/** Verified blocks in a row before growing back one rung. */
export const SUCCESSES_TO_GROW = 8;
/** Smallest block the RF adaptation goes down to (length errors may go lower). */
export const MIN_RF_BLOCK = 64;

export class ReadTuning {
  /** Current short-Le block size (plaintext bytes per READ BINARY). */
  blockSize: number;
  /** Whether extended-length READ BINARY works end to end (reader and card). */
  extended: Tri;
  /** Whether READ BINARY with a short EF identifier works (saves one SELECT per file). */
  sfi: Tri;
  /** Largest plaintext for one extended READ BINARY. */
  extendedBlock: number;

  /** Largest short block the card accepted (length errors lower it; RF adaptation never exceeds it). */
  ceiling: number;
  /** Extended-length reads paused after repeated link losses (resumed after successes). */
  extendedSuspended = false;
  /** Block-size changes made by the RF adaptation, for the read summary. */
  readonly adaptations: { from: number | "extended"; to: number | "extended"; why: "losses" | "successes" }[] = [];
  private lossesInRow = 0;
  private successesInRow = 0;

  constructor(opts: { maxShortBlock: number; extended: "auto" | "on" | "off"; extendedBlock: number; sfi?: boolean }) {
    this.blockSize = SHORT_BLOCK_LADDER.find((b) => b <= opts.maxShortBlock) ?? 16;
    this.ceiling = this.blockSize;
    this.extended = opts.extended === "off" ? "no" : "unknown";
    this.extendedBlock = opts.extendedBlock;
    this.sfi = opts.sfi === false ? "no" : "unknown";
  }

  /** Step down the ladder after a length error; false when already at the bottom. */
  shrink(): boolean {
    const next = SHORT_BLOCK_LADDER.find((b) => b < this.blockSize);
    if (next === undefined) return false;
    this.blockSize = next;
    this.ceiling = next;
    return true;
  }

  /** Use exactly `n` (from 6Cxx) if it is smaller than the current block. */
  clampTo(n: number): void {
    if (n > 0 && n < this.blockSize) {
      this.blockSize = n;
      this.ceiling = n;
    }
  }

  /** Whether the next long read should be extended length. */
  get extendedNow(): boolean {
    return this.extended !== "no" && !this.extendedSuspended;
  }

  /** A READ BINARY was lost on the link (not a length error): maybe shrink. */
  noteLoss(): void {
    this.successesInRow = 0;
    if (++this.lossesInRow < LOSSES_TO_SHRINK) return;
    this.lossesInRow = 0;
    if (this.extended === "yes" && !this.extendedSuspended) {
      this.extendedSuspended = true;
      this.adaptations.push({ from: "extended", to: this.blockSize, why: "losses" });
      return;
    }
    const next = SHORT_BLOCK_LADDER.find((b) => b < this.blockSize);
    if (next !== undefined && next >= MIN_RF_BLOCK) {
      this.adaptations.push({ from: this.blockSize, to: next, why: "losses" });
      this.blockSize = next;
    }
  }

  /** A READ BINARY passed MAC verification: maybe grow back. */
  noteSuccess(): void {
    this.lossesInRow = 0;
    if (++this.successesInRow < SUCCESSES_TO_GROW) return;
    this.successesInRow = 0;
    if (this.blockSize < this.ceiling) {
      const up = [...SHORT_BLOCK_LADDER].reverse().find((b) => b > this.blockSize && b <= this.ceiling) ?? this.ceiling;
      this.adaptations.push({ from: this.blockSize, to: up, why: "successes" });
      this.blockSize = up;
    } else if (this.extendedSuspended) {
      this.extendedSuspended = false;
      this.adaptations.push({ from: this.blockSize, to: "extended", why: "successes" });
    }
  }

  facts(): { blockSize: number; extendedLength: boolean; readBySfi: boolean } {
    return { blockSize: this.blockSize, extendedLength: this.extended === "yes", readBySfi: this.sfi === "yes" };
  }
}
