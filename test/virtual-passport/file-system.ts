/**
 * The chip's file system, ICAO 9303-10 §3.10 / §4.6: the LDS1 eMRTD application
 * (AID A0 00 00 02 47 10 01) holding EF.COM, EF.SOD and DG1..DG16 with their file
 * identifiers and short EF identifiers. EF.CardAccess, in the MF, is the chip's (card.ts):
 * it exists only when the chip offers PACE.
 */

/** The files of one passport, as the fixtures build them. */
export interface PassportFiles {
  com: Uint8Array;
  sod: Uint8Array;
  /** Data groups by number, 1..16. */
  dgs: Map<number, Uint8Array>;
}

export const EMRTD_AID = Uint8Array.of(0xa0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01);

export const FID_COM = 0x011e;
export const FID_SOD = 0x011d;

export interface ElementaryFile {
  fid: number;
  sfi: number;
  /** For logs: "COM", "SOD", "DG2". */
  name: string;
  content: Uint8Array;
}

/** EF.COM 011E/1E, EF.SOD 011D/1D, DGn 01nn/n (9303-10 Table 39). */
export class EmrtdFileSystem {
  private readonly byFid = new Map<number, ElementaryFile>();
  private readonly bySfi = new Map<number, ElementaryFile>();

  constructor(files: PassportFiles) {
    this.add({ fid: FID_COM, sfi: 0x1e, name: "COM", content: files.com });
    this.add({ fid: FID_SOD, sfi: 0x1d, name: "SOD", content: files.sod });
    for (const [n, content] of files.dgs) {
      if (!Number.isInteger(n) || n < 1 || n > 16) throw new RangeError(`data group number must be 1..16, got ${n}`);
      this.add({ fid: 0x0100 + n, sfi: n, name: `DG${n}`, content });
    }
  }

  private add(ef: ElementaryFile): void {
    this.byFid.set(ef.fid, ef);
    this.bySfi.set(ef.sfi, ef);
  }

  byFileId(fid: number): ElementaryFile | undefined {
    return this.byFid.get(fid);
  }

  byShortId(sfi: number): ElementaryFile | undefined {
    return this.bySfi.get(sfi);
  }

  /** Largest file: decides whether the chip must support the odd-INS READ BINARY (9303-10 §3.5.2). */
  largestFileSize(): number {
    let max = 0;
    for (const ef of this.byFid.values()) max = Math.max(max, ef.content.length);
    return max;
  }
}
