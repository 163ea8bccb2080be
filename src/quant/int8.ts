// Row-wise (per output channel) absmax int8 quantization of a frozen linear weight W (out, in), the
// "vector-wise" scheme of LLM.int8() (Dettmers et al. 2022, arXiv 2208.07339, section 3.2; the
// weight side of bitsandbytes' int8_vectorwise_quant):
//   absmax_r = max_c |W[r, c]|,   scale_r = absmax_r / 127,
//   q[r, c]  = clamp(round(W[r, c] / scale_r), -127, 127),   W~[r, c] = q[r, c] * scale_r.
// Every step is one float32 operation (computed in f64 and rounded once with Math.fround, which is
// the correctly rounded f32 result for + - * /), so the codes are bit-identical to numpy/torch f32.
//
// Rounding: round-half-to-even, as torch.round / numpy.round and CUDA's __float2int_rn do. It is
// unbiased over many ties (round-half-up would push exact .5 values upward on average), and it is
// what an independent torch/numpy reference computes, so codes match exactly.
// A zero row (absmax 0) stores scale 0 and codes 0 (dequantizes to exact zeros) instead of 0/0.
// Non-finite weights are rejected: a NaN/Inf would poison the whole row's scale.
//
// Contract: pure functions on plain typed arrays; nothing here touches the engine heap.

/** Row-wise int8 codes of a weight (rows, cols) = (out, in). */
export interface Int8Weight {
  readonly rows: number;
  readonly cols: number;
  /** (rows, cols) codes in [-127, 127]. */
  readonly codes: Int8Array;
  /** (rows) per-row scale absmax_r / 127 (float32). */
  readonly scales: Float32Array;
}

const INT8_MAX_CODE = 127;

/** Storage bytes of a row-wise int8 weight: one byte per weight plus one f32 scale per row. */
export function int8Bytes(rows: number, cols: number): number {
  return rows * cols + 4 * rows;
}

/** Rounds to the nearest integer, ties to the even neighbour (torch.round). */
export function roundHalfToEven(x: number): number {
  const r = Math.round(x); // ties toward +Infinity
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkDims(what: string, length: number, rows: number, cols: number): void {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 0 || cols < 0) {
    throw new RangeError(`${what}: invalid shape [${rows}, ${cols}]`);
  }
  if (length !== rows * cols) {
    throw new Error(`${what}: ${length} values do not fill shape [${rows}, ${cols}]`);
  }
}

/** True when [start, end) is a valid integer sub-range of [0, limit]. */
export function isRange(start: number, end: number, limit: number): boolean {
  const integers = Number.isSafeInteger(start) && Number.isSafeInteger(end);
  return integers && 0 <= start && start <= end && end <= limit;
}

/** Quantizes weight (rows, cols) row-wise to int8. Throws on non-finite values. */
export function quantizeInt8(weight: Float32Array, rows: number, cols: number): Int8Weight {
  checkDims("quantizeInt8", weight.length, rows, cols);
  const codes = new Int8Array(rows * cols); // (rows, cols)
  const scales = new Float32Array(rows); // (rows)
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let absmax = 0;
    for (let c = 0; c < cols; c++) {
      const w = weight[base + c];
      if (!Number.isFinite(w)) {
        throw new Error(
          `quantizeInt8: weight[${r}, ${c}] is ${w}; only finite weights can be quantized`,
        );
      }
      const a = Math.abs(w);
      if (a > absmax) absmax = a;
    }
    if (absmax === 0) continue; // scale 0, codes 0
    const scale = Math.fround(absmax / INT8_MAX_CODE);
    scales[r] = scale;
    for (let c = 0; c < cols; c++) {
      const q = roundHalfToEven(Math.fround(weight[base + c] / scale));
      codes[base + c] = q > INT8_MAX_CODE ? INT8_MAX_CODE : Math.max(q, -INT8_MAX_CODE);
    }
  }
  return { rows, cols, codes, scales };
}

/**
 * Writes rows [rowStart, rowEnd) of the dequantized weight into `into` ((rowEnd - rowStart) * cols
 * values, row-major, starting at `into[intoOffset]`), for on-the-fly use in chunks.
 */
export function dequantizeInt8Rows(
  q: Int8Weight,
  into: Float32Array,
  rowStart: number,
  rowEnd: number,
  intoOffset = 0,
): void {
  const { cols, codes, scales } = q;
  if (!isRange(rowStart, rowEnd, q.rows)) {
    throw new RangeError(
      `dequantizeInt8Rows: rows [${rowStart}, ${rowEnd}) outside [0, ${q.rows})`,
    );
  }
  const needed = (rowEnd - rowStart) * cols;
  if (intoOffset < 0 || intoOffset + needed > into.length) {
    throw new RangeError(
      `dequantizeInt8Rows: output of ${into.length} values cannot hold ${needed} ` +
        `at offset ${intoOffset}`,
    );
  }
  let o = intoOffset;
  for (let r = rowStart; r < rowEnd; r++) {
    const scale = scales[r];
    const base = r * cols;
    // the Float32Array store rounds the f64 product once: the correctly rounded f32 product
    for (let c = 0; c < cols; c++) into[o++] = codes[base + c] * scale;
  }
}

/** The full dequantized weight (rows, cols) as float32. */
export function dequantizeInt8(q: Int8Weight): Float32Array {
  const out = new Float32Array(q.rows * q.cols); // (rows, cols)
  dequantizeInt8Rows(q, out, 0, q.rows);
  return out;
}
