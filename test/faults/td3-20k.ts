/**
 * The benchmark's document (issue 4): a TD3 passport with a 20,000-byte DG2. Built from the
 * "td3" profile (ICAO specimen ERIKSSON ANNA MARIA: DG1, DG11, DG12) with its portrait padded
 * (JPEG COM segments) and a fresh EF.SOD signed by the TEST-ONLY Utopia document signer.
 */
import { buildDg2, buildEfCom } from "../virtual-passport/fixtures/builders.ts";
import { loadProfile, type Profile } from "../virtual-passport/fixtures/index.ts";
import { padJpeg } from "../virtual-passport/fixtures/jpeg.ts";
import { loadTestPki } from "../virtual-passport/fixtures/pki.ts";
import { buildSod } from "../virtual-passport/fixtures/sod.ts";

export const DG2_BYTES = 20_000;

let cached: Promise<Profile> | undefined;

export function loadTd3With20kDg2(): Promise<Profile> {
  cached ??= build();
  return cached;
}

async function build(): Promise<Profile> {
  const base = await loadProfile("td3");
  const info = { width: base.portrait.width, height: base.portrait.height, format: "jpeg" as const };
  const grow = DG2_BYTES - buildDg2(base.portrait.jpeg, info).length;
  let jpeg = padJpeg(base.portrait.jpeg, base.portrait.jpeg.length + grow);
  let dg2 = buildDg2(jpeg, info);
  // DG2's length field may have grown by a byte: correct once.
  if (dg2.length !== DG2_BYTES) {
    jpeg = padJpeg(base.portrait.jpeg, jpeg.length + DG2_BYTES - dg2.length);
    dg2 = buildDg2(jpeg, info);
  }
  if (dg2.length !== DG2_BYTES) throw new Error(`DG2 came out at ${dg2.length} bytes`);
  const dgs = new Map(base.files.dgs);
  dgs.set(2, dg2);
  const pki = await loadTestPki();
  const sod = await buildSod({ hashAlg: "sha256", dgs, signer: pki.ds });
  const com = buildEfCom({ ldsVersion: "0107", unicodeVersion: "040000", dgs: [...dgs.keys()] });
  return {
    ...base,
    name: "td3-20k",
    description: "TD3 passport: DG1, DG2 (20,000 B), DG11, DG12; SHA-256 EF.SOD",
    files: { com, sod, dgs },
    portrait: { jpeg, width: info.width, height: info.height },
  };
}
