// Loader for test/fixtures/quant/quant_cases.json (written by scripts/fixtures/make_quant_cases.py,
// an independent numpy reference of NF4 and row-wise int8 quantization).

import { readFileSync } from "node:fs";
import { nonEmpty } from "../helpers/fixture-cases.js";

export interface QuantCase {
  name: string;
  rows: number;
  cols: number;
  blocksize: number;
  weight: Float32Array;
  nf4Packed: Uint8Array;
  nf4Absmax: Float32Array;
  nf4Dequant: Float32Array;
  int8Codes: Int8Array;
  int8Scales: Float32Array;
  int8Dequant: Float32Array;
}

interface RawCase {
  name: string;
  rows: number;
  cols: number;
  blocksize: number;
  weight_bits: number[];
  nf4_packed_hex: string;
  nf4_absmax_bits: number[];
  nf4_dequant_bits: number[];
  int8_codes: number[];
  int8_scale_bits: number[];
  int8_dequant_bits: number[];
}

const fromBits = (bits: number[]): Float32Array => new Float32Array(Uint32Array.from(bits).buffer);

const raw = JSON.parse(
  readFileSync(new URL("../fixtures/quant/quant_cases.json", import.meta.url), "utf8"),
) as { nf4_code: number[]; nf4_midpoints: number[]; cases: RawCase[] };

export const referenceNf4Code = Float32Array.from(raw.nf4_code);
export const referenceNf4Midpoints = Float32Array.from(raw.nf4_midpoints);

export const quantCases: QuantCase[] = nonEmpty(raw.cases, "quant/quant_cases.json").map((c) => ({
  name: c.name,
  rows: c.rows,
  cols: c.cols,
  blocksize: c.blocksize,
  weight: fromBits(c.weight_bits),
  nf4Packed: Uint8Array.from(Buffer.from(c.nf4_packed_hex, "hex")),
  nf4Absmax: fromBits(c.nf4_absmax_bits),
  nf4Dequant: fromBits(c.nf4_dequant_bits),
  int8Codes: Int8Array.from(c.int8_codes),
  int8Scales: fromBits(c.int8_scale_bits),
  int8Dequant: fromBits(c.int8_dequant_bits),
}));

/** Index of the first element where two arrays differ (bitwise for floats via Object.is), or -1. */
export function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}
