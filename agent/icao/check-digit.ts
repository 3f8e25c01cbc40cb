/**
 * MRZ check digit, ICAO 9303-3 §4.9: weights 7-3-1 repeated; digits count as themselves,
 * A–Z as 10–35, the filler `<` as 0. Returns the digit 0–9.
 */
export function checkDigit(field: string): number {
  let sum = 0;
  for (let i = 0; i < field.length; i++) {
    const c = field.charCodeAt(i);
    let v: number;
    if (c >= 48 && c <= 57) v = c - 48;
    else if (c >= 65 && c <= 90) v = c - 55;
    else if (c === 60) v = 0;
    else throw new RangeError(`checkDigit: character at position ${i} is not 0-9, A-Z or <`);
    sum += v * WEIGHTS[i % 3]!;
  }
  return sum % 10;
}

const WEIGHTS = [7, 3, 1] as const;
