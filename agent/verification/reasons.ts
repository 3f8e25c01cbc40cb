/**
 * The verdict's codes in one place: reason codes (any failing one makes the verdict `failed`,
 * any other `unverifiable`) and warnings (reported, the verdict unchanged). README
 * (Verification) and deploy/asyncapi.yaml list the same codes.
 */

/** Passive Authentication's reason codes -> whether the verdict fails (true) or is only unverifiable (false). */
export const REASONS: Record<string, { fails: boolean; text: string }> = {
  SOD_MALFORMED: { fails: true, text: "EF.SOD is malformed" },
  DG_HASH_MISMATCH: { fails: true, text: "a data group does not match its hash" },
  DG_NOT_IN_SOD: { fails: true, text: "a data group read is not covered by the SOD" },
  SOD_SIGNATURE_BAD: { fails: true, text: "the SOD signature does not verify" },
  SOD_DIGEST_MISMATCH: { fails: true, text: "the SOD's signed message digest does not match its content" },
  SOD_CONTENT_TYPE_MISMATCH: { fails: true, text: "the SOD's signed content type is wrong" },
  SOD_ATTRIBUTES_MALFORMED: { fails: true, text: "the SOD's signed attributes are malformed" },
  SOD_NO_SIGNED_ATTRIBUTES: { fails: true, text: "the SOD's signer has no signed attributes (ICAO 9303-10 requires contentType and messageDigest)" },
  DS_CERT_SIGNATURE_BAD: { fails: true, text: "the document signer certificate was not signed by the CSCA it names" },
  DS_KEY_USAGE: { fails: true, text: "the document signer certificate does not allow digital signatures" },
  DS_IS_CA: { fails: true, text: "the document signer certificate is a CA certificate (basicConstraints cA TRUE)" },
  DS_CRITICAL_EXTENSION: { fails: true, text: "the document signer certificate has a critical extension this verifier does not know" },
  CSCA_NOT_CA: { fails: true, text: "the issuing CSCA certificate is not a CA certificate" },
  CSCA_KEY_USAGE: { fails: true, text: "the issuing CSCA certificate does not allow keyCertSign" },
  CSCA_CRITICAL_EXTENSION: { fails: true, text: "the issuing CSCA certificate has a critical extension this verifier does not know" },
  DS_EXPIRED: { fails: true, text: "the document signer certificate is expired" },
  DS_NOT_YET_VALID: { fails: true, text: "the document signer certificate is not yet valid" },
  CSCA_EXPIRED: { fails: true, text: "the CSCA certificate is expired" },
  CSCA_NOT_YET_VALID: { fails: true, text: "the CSCA certificate is not yet valid" },
  DS_REVOKED: { fails: true, text: "the document signer certificate is revoked" },
  CSCA_REVOKED: { fails: true, text: "the CSCA certificate is revoked" },
  COUNTRY_MISMATCH: { fails: true, text: "the signer's country differs from the issuing state" },
  NO_DG_CHECKED: { fails: false, text: "no data group was checked" },
  NO_DS_CERT: { fails: false, text: "the document signer certificate is missing" },
  UNSUPPORTED_ALGORITHM: { fails: false, text: "an algorithm is not supported" },
  NO_TRUST_STORE: { fails: false, text: "no trust store is configured" },
  NO_CSCA: { fails: false, text: "no trusted CSCA issued the document signer" },
  VERIFICATION_ERROR: { fails: false, text: "the verification itself stopped with an error" },
};

/** Reason codes added to Passive Authentication's by what the chip did. */
export const CHIP_REASONS: Record<string, { fails: boolean; text: string }> = {
  DG15_REFUSED: { fails: true, text: "the chip refused DG15, which EF.SOD lists: a copied chip hiding its Active Authentication key?" },
  AA_FAILED: { fails: true, text: "the chip failed Active Authentication (its key is not DG15's: a copied chip?)" },
  AA_NOT_PERFORMED: { fails: false, text: "EF.SOD lists DG15 but Active Authentication was not performed" },
  AA_REFUSED: { fails: true, text: "the chip refused INTERNAL AUTHENTICATE though EF.SOD lists DG15: a copied chip?" },
  AA_ERROR: { fails: false, text: "Active Authentication could not be completed" },
  CA_FAILED: { fails: true, text: "the chip failed Chip Authentication (it does not hold DG14's key: a copied chip?)" },
  CAM_FAILED: { fails: true, text: "the chip failed PACE Chip Authentication Mapping (its data do not match DG14's key: a copied chip?)" },
  CA_ERROR: { fails: false, text: "Chip Authentication could not be completed" },
  NO_SOD: { fails: false, text: "EF.SOD was not read" },
};

/** Codes that are reported but do not change the verdict. */
export const WARNINGS: Record<string, string> = {
  COM_SOD_MISMATCH: "EF.COM and EF.SOD list different data groups (EF.SOD decides)",
  DG_NOT_READ: "a data group EF.SOD lists was not read, so it is not proven",
  CRL_STALE: "every CRL of the CSCA is past its nextUpdate: revocation not proven",
  COUNTRY_CODE_UNKNOWN: "the MRZ issuing state maps to no country code",
  SIGNING_TIME_MALFORMED: "the signingTime attribute is malformed",
  DS_NO_COUNTRY: "the document signer certificate names no country",
  CSCA_NO_COUNTRY: "the CSCA certificate names no country",
};

/** The text and weight of any reason code (an unknown code fails, to be safe). */
export function reasonInfo(code: string): { fails: boolean; text: string } {
  return REASONS[code] ?? CHIP_REASONS[code] ?? { fails: true, text: code };
}
