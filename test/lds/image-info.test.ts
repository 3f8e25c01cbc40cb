import { describe, expect, test } from "bun:test";
import { concat, fromHex } from "../../agent/bytes.ts";
import { detectImageFormat, imageSize, jpegSize } from "../../agent/lds/image-info.ts";
import { jp2File, jpeg2000Codestream, REAL_JPEG_3X2, REAL_PROGRESSIVE_JPEG_5X3 } from "./builders.ts";

describe("image format and size from the bytes", () => {
  test("real baseline JPEG (SOF0 after APP0, DQT)", () => {
    expect(detectImageFormat(REAL_JPEG_3X2)).toBe("jpeg");
    expect(imageSize(REAL_JPEG_3X2)).toEqual({ width: 3, height: 2 });
  });

  test("real progressive JPEG (SOF2)", () => {
    expect(imageSize(REAL_PROGRESSIVE_JPEG_5X3)).toEqual({ width: 5, height: 3 });
  });

  test("fill bytes before a marker are skipped (T.81 §B.1.1.2)", () => {
    const padded = concat(REAL_JPEG_3X2.subarray(0, 2), Uint8Array.of(0xff, 0xff), REAL_JPEG_3X2.subarray(2));
    expect(jpegSize(padded)).toEqual({ width: 3, height: 2 });
  });

  test("JP2 file: ihdr box, and the codestream SIZ when ihdr is missing", () => {
    const jp2 = jp2File(420, 525);
    expect(detectImageFormat(jp2)).toBe("jpeg2000");
    expect(imageSize(jp2)).toEqual({ width: 420, height: 525 });
    expect(imageSize(jp2File(300, 400, { omitIhdr: true }))).toEqual({ width: 300, height: 400 });
  });

  test("bare codestream: SIZ minus image offsets", () => {
    const cs = jpeg2000Codestream(240, 320, 16, 8);
    expect(detectImageFormat(cs)).toBe("jpeg2000");
    expect(imageSize(cs)).toEqual({ width: 240, height: 320 });
  });

  test("unknown and cut images give no size, never a throw", () => {
    expect(detectImageFormat(fromHex("89504E470D0A1A0A"))).toBe("unknown");
    expect(imageSize(fromHex("89504E470D0A1A0A"))).toBeUndefined();
    // a prefix ending before SOF0's width field cannot give a size; one holding it can
    let sof = 0;
    while (!(REAL_JPEG_3X2[sof] === 0xff && REAL_JPEG_3X2[sof + 1] === 0xc0)) sof++;
    for (let n = 0; n <= REAL_JPEG_3X2.length; n++) {
      const size = imageSize(REAL_JPEG_3X2.subarray(0, n));
      if (n < sof + 9) expect(size).toBeUndefined();
      else expect(size).toEqual({ width: 3, height: 2 });
    }
    const jp2 = jp2File(420, 525);
    for (let n = 0; n < jp2.length; n++) imageSize(jp2.subarray(0, n));
  });

  test("JPEG with SOS before any frame header, and a zero segment length", () => {
    expect(jpegSize(fromHex("FFD8FFDA0008010100003F00FFD9"))).toBeUndefined();
    expect(jpegSize(fromHex("FFD8FFE00000FFC0000B080002000301011100"))).toBeUndefined();
  });

  test("JP2 with a box length running past the end, or 0 (to end) with no ihdr", () => {
    const sig = fromHex("0000000C6A5020200D0A870A");
    expect(imageSize(concat(sig, fromHex("7FFFFFFF6A703268")))).toBeUndefined();
    expect(imageSize(concat(sig, fromHex("000000006A7032680000")))).toBeUndefined();
    expect(imageSize(concat(sig, fromHex("00000001 6A703268 FFFFFFFF FFFFFFFF")))).toBeUndefined();
  });
});
