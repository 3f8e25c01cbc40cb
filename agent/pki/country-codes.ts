/**
 * MRZ issuing-state codes (ICAO 9303-3 §5: ISO 3166-1 alpha-3, plus ICAO's own codes) to the
 * ISO 3166-1 alpha-2 codes that X.509 countryName carries (RFC 5280 / 9303-12 §7.1.1 C field).
 * Generated from Debian iso-codes' iso_3166-1.json; ICAO additions below it.
 */

// Each entry: 3-letter code followed by its 2-letter code.
const ISO_3166 =
  "ABWAW AFGAF AGOAO AIAAI ALAAX ALBAL ANDAD AREAE ARGAR ARMAM ASMAS ATAAQ ATFTF ATGAG AUSAU AUTAT AZEAZ BDIBI BELBE BENBJ " +
  "BESBQ BFABF BGDBD BGRBG BHRBH BHSBS BIHBA BLMBL BLRBY BLZBZ BMUBM BOLBO BRABR BRBBB BRNBN BTNBT BVTBV BWABW CAFCF CANCA " +
  "CCKCC CHECH CHLCL CHNCN CIVCI CMRCM CODCD COGCG COKCK COLCO COMKM CPVCV CRICR CUBCU CUWCW CXRCX CYMKY CYPCY CZECZ DEUDE " +
  "DJIDJ DMADM DNKDK DOMDO DZADZ ECUEC EGYEG ERIER ESHEH ESPES ESTEE ETHET FINFI FJIFJ FLKFK FRAFR FROFO FSMFM GABGA GBRGB " +
  "GEOGE GGYGG GHAGH GIBGI GINGN GLPGP GMBGM GNBGW GNQGQ GRCGR GRDGD GRLGL GTMGT GUFGF GUMGU GUYGY HKGHK HMDHM HNDHN HRVHR " +
  "HTIHT HUNHU IDNID IMNIM INDIN IOTIO IRLIE IRNIR IRQIQ ISLIS ISRIL ITAIT JAMJM JEYJE JORJO JPNJP KAZKZ KENKE KGZKG KHMKH " +
  "KIRKI KNAKN KORKR KWTKW LAOLA LBNLB LBRLR LBYLY LCALC LIELI LKALK LSOLS LTULT LUXLU LVALV MACMO MAFMF MARMA MCOMC MDAMD " +
  "MDGMG MDVMV MEXMX MHLMH MKDMK MLIML MLTMT MMRMM MNEME MNGMN MNPMP MOZMZ MRTMR MSRMS MTQMQ MUSMU MWIMW MYSMY MYTYT NAMNA " +
  "NCLNC NERNE NFKNF NGANG NICNI NIUNU NLDNL NORNO NPLNP NRUNR NZLNZ OMNOM PAKPK PANPA PCNPN PERPE PHLPH PLWPW PNGPG POLPL " +
  "PRIPR PRKKP PRTPT PRYPY PSEPS PYFPF QATQA REURE ROURO RUSRU RWARW SAUSA SDNSD SENSN SGPSG SGSGS SHNSH SJMSJ SLBSB SLESL " +
  "SLVSV SMRSM SOMSO SPMPM SRBRS SSDSS STPST SURSR SVKSK SVNSI SWESE SWZSZ SXMSX SYCSC SYRSY TCATC TCDTD TGOTG THATH TJKTJ " +
  "TKLTK TKMTM TLSTL TONTO TTOTT TUNTN TURTR TUVTV TWNTW TZATZ UGAUG UKRUA UMIUM URYUY USAUS UZBUZ VATVA VCTVC VENVE VGBVG " +
  "VIRVI VNMVN VUTVU WLFWF WSMWS YEMYE ZAFZA ZMBZM ZWEZW ";

/** ICAO 9303-3 §5 codes that are not ISO alpha-3. Germany is "D" in the MRZ. */
const ICAO_EXTRA: Record<string, string> = {
  D: "DE",
  // ICAO specimen state Utopia (9303 examples); test PKIs of this project use C=UT.
  UTO: "UT",
  // British nationals of various kinds: certificates say GB
  GBD: "GB",
  GBN: "GB",
  GBO: "GB",
  GBP: "GB",
  GBS: "GB",
  // Kosovo (no ISO code assigned; XK is the customary user-assigned code)
  RKS: "XK",
  // EU laissez-passer
  EUE: "EU",
};

const TABLE: Map<string, string> = (() => {
  const m = new Map<string, string>();
  for (const entry of ISO_3166.trim().split(/\s+/)) m.set(entry.slice(0, 3), entry.slice(3));
  for (const [k, v] of Object.entries(ICAO_EXTRA)) m.set(k, v);
  return m;
})();

/** Alpha-2 code for an MRZ issuing state ("UTO", "D<<", "NLD"); a 2-letter input is returned as is. */
export function countryAlpha2(issuingState: string): string | undefined {
  const code = issuingState.replace(/</g, "").trim().toUpperCase();
  if (code.length === 2) return code;
  return TABLE.get(code);
}
