// 4-bit NormalFloat (NF4) blockwise quantization of a frozen weight, as introduced by QLoRA
// (Dettmers et al. 2023, arXiv 2305.14314, section 3 "4-bit NormalFloat Quantization") and stored
// by bitsandbytes (`quant_type="nf4"`, functional.quantize_4bit / the kQuantizeBlockwise kernel):
//   - the weight is flattened row-major and cut into blocks of `blocksize` consecutive elements
//     (default 64; the last block may be partial);
//   - absmax_b = max |x| over block b, stored as float32 (double quantization of the absmax, QLoRA
//     section 3 "Double Quantization", is NOT implemented);
//   - each x is normalised as x * (1 / absmax_b), both steps rounded to float32 (bitsandbytes
//     multiplies by the reciprocal rather than dividing; the two can differ by one ulp, which
//     matters only for values exactly on a decision boundary);
//   - the normalised value gets the index of the NEAREST of the 16 NF4 code values. Decision
//     boundaries are the float32-rounded midpoints of adjacent codes, and a value is moved to the
//     upper code only when it is strictly greater than the boundary (bitsandbytes' dQuantizeNF4
//     decision tree uses `x > pivot`): an exact tie goes to the LOWER (more negative) code;
//   - two 4-bit codes per byte, the element with the even flat index in the HIGH nibble
//     (bitsandbytes: `packed = q[2j] << 4 | q[2j+1]`); an odd element count pads the last low
//     nibble with the zero code 0b0111;
//   - dequantization: W~ = NF4[code] * absmax_b, one float32 multiply.
// An all-zero block stores absmax 0 and the zero code 0b0111 (bitsandbytes computes 0 * (1/0) = NaN
// there; either way the block dequantizes to zeros). Non-finite weights are rejected.
//
// Contract: pure functions on plain typed arrays; nothing here touches the engine heap.

import { isRange } from "./int8.js";

/**
 * The 16 NF4 code values, ascending (code index 0..15). Source: bitsandbytes
 * functional.get_4bit_type("nf4") and the dDequantizeNF4 table in csrc/kernels.cu; they are the
 * QLoRA construction (equal-area quantiles of N(0, 1), normalised to [-1, 1], with an exact 0)
 * rounded to float32. scripts/fixtures/make_quant_cases.py re-derives them from the normal quantile
 * function as a check.
 */
const NF4_LITERALS: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
];
export const NF4_CODE: Float32Array = Float32Array.from(NF4_LITERALS); // (16)

/** Index of the exact-zero code (also the padding nibble). */
const NF4_ZERO_CODE = 7;

/**
 * (15) decision boundaries: float32((code[k] + code[k+1]) / 2), the midpoint taken in f64 from the
 * literals. These equal the pivots of bitsandbytes' dQuantizeNF4 (0.03979014977812767f,
 * -0.8480964004993439f, ...); test/quant checks that.
 */
export const NF4_BOUNDARIES: Float32Array = Float32Array.from(
  { length: 15 },
  (_, k) => (NF4_LITERALS[k] + NF4_LITERALS[k + 1]) / 2,
);

export const NF4_DEFAULT_BLOCKSIZE = 64;
const MAX_BLOCKSIZE = 1 << 24;

/** NF4 codes of a flattened weight of `numel` elements. */
export interface Nf4Weight {
  readonly numel: number;
  readonly blocksize: number;
  /** (ceil(numel / 2)) two codes per byte, even flat index in the high nibble. */
  readonly packed: Uint8Array;
  /** (ceil(numel / blocksize)) per-block absmax (float32). */
  readonly absmax: Float32Array;
}

function checkBlocksize(what: string, blocksize: number): void {
  if (!Number.isSafeInteger(blocksize) || blocksize < 1 || blocksize > MAX_BLOCKSIZE) {
    throw new RangeError(
      `${what}: blocksize must be an integer in [1, ${MAX_BLOCKSIZE}], got ${blocksize}`,
    );
  }
}

/** Storage bytes: half a byte per weight (rounded up) plus one f32 absmax per block. */
export function nf4Bytes(numel: number, blocksize = NF4_DEFAULT_BLOCKSIZE): number {
  checkBlocksize("nf4Bytes", blocksize);
  return Math.ceil(numel / 2) + 4 * Math.ceil(numel / blocksize);
}

/** Code index of a normalised value: the number of boundaries strictly below x (ties go down). */
export function nf4CodeOf(x: number): number {
  const b = NF4_BOUNDARIES;
  // binary search over the 15 sorted boundaries: the same pivots, in the same order, as the
  // bitsandbytes decision tree; a NaN compares false everywhere and lands on code 0 as there.
  let code = 0;
  if (x > b[code + 7]) code += 8;
  if (x > b[code + 3]) code += 4;
  if (x > b[code + 1]) code += 2;
  if (x > b[code]) code += 1;
  return code;
}

/** Quantizes a flattened weight to NF4 with blockwise absmax. Throws on non-finite values. */
export function quantizeNf4(weight: Float32Array, blocksize = NF4_DEFAULT_BLOCKSIZE): Nf4Weight {
  checkBlocksize("quantizeNf4", blocksize);
  const n = weight.length;
  const blocks = Math.ceil(n / blocksize);
  const absmax = new Float32Array(blocks); // (blocks)
  // (ceil(n / 2)) bytes, pre-filled with zero codes (zero blocks and the odd padding nibble)
  const packed = new Uint8Array(Math.ceil(n / 2)).fill(NF4_ZERO_CODE | (NF4_ZERO_CODE << 4));
  for (let blk = 0; blk < blocks; blk++) {
    const start = blk * blocksize;
    const end = Math.min(n, start + blocksize);
    let amax = 0;
    for (let i = start; i < end; i++) {
      const w = weight[i];
      if (!Number.isFinite(w)) {
        throw new Error(
          `quantizeNf4: weight element ${i} is ${w}; only finite weights can be quantized`,
        );
      }
      const a = Math.abs(w);
      if (a > amax) amax = a;
    }
    absmax[blk] = amax;
    if (amax === 0) continue; // zero codes already in place
    const recip = Math.fround(1 / amax);
    for (let i = start; i < end; i++) {
      const code = nf4CodeOf(Math.fround(weight[i] * recip));
      const byte = i >>> 1;
      const old = packed[byte];
      packed[byte] = (i & 1) === 0 ? (code << 4) | (old & 0x0f) : (old & 0xf0) | code;
    }
  }
  return { numel: n, blocksize, packed, absmax };
}

/**
 * Writes dequantized flat elements [start, end) into `into` starting at `into[intoOffset]`, for
 * on-the-fly use in chunks (rows r0..r1 of a (rows, cols) weight are [r0*cols, r1*cols)).
 */
export function dequantizeNf4Range(
  q: Nf4Weight,
  into: Float32Array,
  start: number,
  end: number,
  intoOffset = 0,
): void {
  if (!isRange(start, end, q.numel)) {
    throw new RangeError(`dequantizeNf4Range: elements [${start}, ${end}) outside [0, ${q.numel})`);
  }
  if (intoOffset < 0 || intoOffset + (end - start) > into.length) {
    throw new RangeError(
      `dequantizeNf4Range: output of ${into.length} values cannot hold ${end - start} ` +
        `at offset ${intoOffset}`,
    );
  }
  const { packed, absmax, blocksize } = q;
  const code = NF4_CODE;
  let o = intoOffset;
  let i = start;
  while (i < end) {
    const blk = Math.floor(i / blocksize);
    const scale = absmax[blk];
    const blockEnd = Math.min(end, (blk + 1) * blocksize);
    for (; i < blockEnd; i++) {
      const byte = packed[i >>> 1];
      const c = (i & 1) === 0 ? byte >>> 4 : byte & 0x0f;
      into[o++] = code[c] * scale; // Float32Array store rounds the product once
    }
  }
}

/** The full dequantized flat weight as float32. */
export function dequantizeNf4(q: Nf4Weight): Float32Array {
  const out = new Float32Array(q.numel);
  dequantizeNf4Range(q, out, 0, q.numel);
  return out;
}
