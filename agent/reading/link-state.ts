/**
 * What the reading strategy has learnt about one card in one reader: the largest
 * READ BINARY that works, whether extended length and SFI reads pass. Probed once per
 * card and kept, so later files do not pay for the discovery again.
 */

/**
 * Short-Le block sizes tried after a 6700 (wrong length), largest first. 231 is the
 * most plaintext a 3DES-protected short response can carry (field notes); documents
 * seen rejecting large Le: Ukraine (≤ 192), Spanish ID (6282 at 256), Russian (6B00).
 * The lower rungs follow dmrtd's ladder.
 */
export const SHORT_BLOCK_LADDER = [231, 223, 192, 160, 128, 112, 96, 64, 32, 16] as const;

export type Tri = "unknown" | "yes" | "no";

export class LinkState {
  /** Current short-Le block size (plaintext bytes per READ BINARY). */
  blockSize: number;
  /** Whether extended-length READ BINARY works end to end (reader and card). */
  extended: Tri;
  /** Whether READ BINARY with a short EF identifier works (saves one SELECT per file). */
  sfi: Tri;
  /** Largest plaintext for one extended READ BINARY. */
  extendedBlock: number;

  constructor(opts: { maxShortBlock: number; extended: "auto" | "on" | "off"; extendedBlock: number; sfi?: boolean }) {
    this.blockSize = SHORT_BLOCK_LADDER.find((b) => b <= opts.maxShortBlock) ?? 16;
    this.extended = opts.extended === "off" ? "no" : "unknown";
    this.extendedBlock = opts.extendedBlock;
    this.sfi = opts.sfi === false ? "no" : "unknown";
  }

  /** Step down the ladder after a length error; false when already at the bottom. */
  shrink(): boolean {
    const next = SHORT_BLOCK_LADDER.find((b) => b < this.blockSize);
    if (next === undefined) return false;
    this.blockSize = next;
    return true;
  }

  /** Use exactly `n` (from 6Cxx) if it is smaller than the current block. */
  clampTo(n: number): void {
    if (n > 0 && n < this.blockSize) this.blockSize = n;
  }

  facts(): { blockSize: number; extendedLength: boolean; readBySfi: boolean } {
    return { blockSize: this.blockSize, extendedLength: this.extended === "yes", readBySfi: this.sfi === "yes" };
  }
}
