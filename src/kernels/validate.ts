// Argument checks shared by every Kernels implementation (ref, wasm, ...): each kernel calls its
// check first, gets the resolved dimensions back, and never reads a shape itself. A failed check
// throws an Error that starts with the kernel name and names the arguments and shapes involved,
// e.g. "matmul: a [2, 3] and b [4, 5] have different inner dims 3 vs 4".
//
// Rules enforced here: tensors are live (not disposed); compute tensors are f32; ids, targets and
// keyLengths are i32; convert takes f32/f16/bf16; outputs that kernels write while still reading
// inputs elsewhere (matmul, permute0213, embedding, crossEntropy) must not overlap those inputs;
// scalar options are finite where that matters; BackwardOptions.accumulate is a boolean if given.

import type { DType } from "../tensor/dtype.js";
import { shapeString } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import type {
  AdamWOptions,
  BackwardOptions,
  MatmulOptions,
  QuantCodes,
  SGDOptions,
} from "./kernels.js";

function describe(name: string, t: Tensor): string {
  return `${name} ${shapeString(t.shape)}`;
}

function requireLive(op: string, name: string, t: Tensor): void {
  if (t.disposed) throw new Error(`${op}: ${name} ${shapeString(t.shape)} is disposed`);
}

/** Throws unless t is live and has one of the given dtypes. */
function requireDType(op: string, name: string, t: Tensor, ...dtypes: DType[]): void {
  requireLive(op, name, t);
  if (!dtypes.includes(t.dtype)) {
    throw new Error(
      `${op}: ${describe(name, t)} has dtype ${t.dtype}, expected ${dtypes.join(" or ")}`,
    );
  }
}

function requireRank(op: string, name: string, t: Tensor, rank: number): void {
  if (t.rank !== rank)
    throw new Error(`${op}: ${describe(name, t)} must have rank ${rank}, not ${t.rank}`);
}

function requireMinRank(op: string, name: string, t: Tensor, rank: number): void {
  if (t.rank < rank) {
    throw new Error(`${op}: ${describe(name, t)} must have rank >= ${rank}, not ${t.rank}`);
  }
}

function requireSameShape(op: string, nameA: string, a: Tensor, nameB: string, b: Tensor): void {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(
      `${op}: ${describe(nameA, a)} and ${describe(nameB, b)} must have the same shape`,
    );
  }
}

function requireSize(op: string, name: string, t: Tensor, size: number, what: string): void {
  if (t.size !== size) {
    throw new Error(
      `${op}: ${describe(name, t)} has ${t.size} elements, expected ${size} (${what})`,
    );
  }
}

/** Throws if the two tensors' bytes overlap (only for kernels that cannot work in place). */
function requireNoOverlap(op: string, nameA: string, a: Tensor, nameB: string, b: Tensor): void {
  if (a.byteLength === 0 || b.byteLength === 0) return;
  if (a.ptr < b.ptr + b.byteLength && b.ptr < a.ptr + a.byteLength) {
    throw new Error(`${op}: ${describe(nameA, a)} overlaps ${describe(nameB, b)} in memory`);
  }
}

function requireFinite(op: string, name: string, value: number): void {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`${op}: ${name} must be a finite number, got ${value}`);
  }
}

/** Rows and channels of a (..., C) tensor. */
function rowsCols(t: Tensor): { rows: number; cols: number } {
  const cols = t.shape[t.rank - 1];
  let rows = 1;
  for (let i = 0; i < t.rank - 1; i++) rows *= t.shape[i];
  return { rows, cols };
}

// ---- matmul ------------------------------------------------------------------------------------

export interface MatmulShape {
  /** Product of the leading dims of out and a. */
  batch: number;
  m: number;
  n: number;
  k: number;
  /** false: b is one 2-D matrix shared by every batch entry. */
  bBatched: boolean;
  /** Inner dim of MatmulOptions.plus (0 without it). */
  k2: number;
}

/** bf16B: the engine takes a bf16 b too (Kernels.bf16Matmul): 2-D, no causal kind. */
export function checkMatmul(
  out: Tensor,
  a: Tensor,
  b: Tensor,
  options: MatmulOptions = {},
  bf16B = false,
): MatmulShape {
  const op = "matmul";
  requireDType(op, "out", out, "f32");
  requireDType(op, "a", a, "f32");
  if (bf16B) requireDType(op, "b", b, "f32", "bf16");
  else requireDType(op, "b", b, "f32");
  if (b.dtype === "bf16" && (b.rank !== 2 || options.causal !== undefined))
    throw new Error(`${op}: a bf16 ${describe("b", b)} must be 2-D, with no causal option`);
  requireMinRank(op, "a", a, 2);
  requireMinRank(op, "b", b, 2);
  requireMinRank(op, "out", out, 2);
  if (options.alpha !== undefined) requireFinite(op, "alpha", options.alpha);
  const transA = options.transA === true;
  const transB = options.transB === true;
  const ar = a.rank;
  const br = b.rank;
  const m = a.shape[ar - (transA ? 1 : 2)];
  const k = a.shape[ar - (transA ? 2 : 1)];
  const kb = b.shape[br - (transB ? 1 : 2)];
  const n = b.shape[br - (transB ? 2 : 1)];
  const aLabel = transA ? "a (transposed)" : "a";
  const bLabel = transB ? "b (transposed)" : "b";
  if (k !== kb) {
    throw new Error(
      `${op}: ${describe(aLabel, a)} and ${describe(bLabel, b)} have different inner dims ${k} vs ${kb}`,
    );
  }
  const batchShape = a.shape.slice(0, ar - 2);
  const expectedOut = [...batchShape, m, n];
  if (out.rank !== expectedOut.length || out.shape.some((d, i) => d !== expectedOut[i])) {
    throw new Error(
      `${op}: ${describe("out", out)} does not match ${describe(aLabel, a)} x ${describe(bLabel, b)}: ` +
        `expected ${shapeString(expectedOut)}`,
    );
  }
  const bBatched = br > 2;
  if (bBatched) {
    const bBatch = b.shape.slice(0, br - 2);
    if (bBatch.length !== batchShape.length || bBatch.some((d, i) => d !== batchShape[i])) {
      throw new Error(
        `${op}: ${describe("b", b)} batch dims ${shapeString(bBatch)} differ from ${describe("a", a)} ` +
          `batch dims ${shapeString(batchShape)} (b must share them or be 2-D)`,
      );
    }
  }
  requireNoOverlap(op, "out", out, "a", a);
  requireNoOverlap(op, "out", out, "b", b);
  if (options.causal !== undefined) checkMatmulCausal(options, m, n, k);
  let batch = 1;
  for (const d of batchShape) batch *= d;
  const k2 = options.plus === undefined ? 0 : checkMatmulPlus(out, options, batch * m, n, bBatched);
  return { batch, m, n, k, bBatched, k2 };
}

/**
 * The rules of MatmulOptions.plus (kernels.ts): one non-batched main product (2-D b shared by a's
 * leading dims, no transA, no causal); op(plus.a) (rows, K2) and op(plus.b) (K2, N), both 2-D f32,
 * neither overlapping out. Returns K2.
 */
function checkMatmulPlus(
  out: Tensor,
  options: MatmulOptions,
  rows: number,
  n: number,
  bBatched: boolean,
): number {
  const op = "matmul";
  const plus = options.plus as NonNullable<MatmulOptions["plus"]>;
  if (bBatched || options.transA === true || options.causal !== undefined) {
    throw new Error(`${op}: plus needs one non-batched product (a 2-D b, no transA, no causal)`);
  }
  requireDType(op, "plus.a", plus.a, "f32");
  requireDType(op, "plus.b", plus.b, "f32");
  if (plus.a.rank !== 2 || plus.b.rank !== 2) {
    throw new Error(
      `${op}: ${describe("plus.a", plus.a)} and ${describe("plus.b", plus.b)} must both be 2-D`,
    );
  }
  if (plus.alpha !== undefined) requireFinite(op, "plus.alpha", plus.alpha);
  const transA = plus.transA === true;
  const transB = plus.transB === true;
  const m2 = plus.a.shape[transA ? 1 : 0];
  const k2 = plus.a.shape[transA ? 0 : 1];
  const kb = plus.b.shape[transB ? 1 : 0];
  const n2 = plus.b.shape[transB ? 0 : 1];
  const aLabel = transA ? "plus.a (transposed)" : "plus.a";
  const bLabel = transB ? "plus.b (transposed)" : "plus.b";
  if (k2 !== kb) {
    throw new Error(
      `${op}: ${describe(aLabel, plus.a)} and ${describe(bLabel, plus.b)} have different inner dims ${k2} vs ${kb}`,
    );
  }
  if (m2 !== rows || n2 !== n) {
    throw new Error(
      `${op}: ${describe(aLabel, plus.a)} x ${describe(bLabel, plus.b)} is (${m2}, ${n2}), the main product is (${rows}, ${n})`,
    );
  }
  requireNoOverlap(op, "out", out, "plus.a", plus.a);
  requireNoOverlap(op, "out", out, "plus.b", plus.b);
  return k2;
}

/** The shape rules of MatmulOptions.causal (kernels.ts), with the dims of op(a) op(b) = (M, K)(K, N). */
function checkMatmulCausal(options: MatmulOptions, m: number, n: number, k: number): void {
  const { kind, period } = options.causal as NonNullable<MatmulOptions["causal"]>;
  const what = `matmul: causal ${String(kind)} with period ${period} and (M, K, N) = (${m}, ${k}, ${n})`;
  if (!Number.isSafeInteger(period) || period < 1)
    throw new Error(`${what}: period must be a positive integer`);
  if (kind === "maskOut") {
    if (n !== period || m % period !== 0)
      throw new Error(`${what}: needs N == period and M a multiple of it`);
    if (options.accumulate === true) throw new Error(`${what}: cannot accumulate`);
  } else if (kind === "lowerA") {
    if (k !== period || m % period !== 0)
      throw new Error(`${what}: needs K == period and M a multiple of it`);
  } else if (kind === "upperA") {
    if (m !== period || k % period !== 0)
      throw new Error(`${what}: needs M == period and K a multiple of it`);
  } else {
    throw new Error(`${what}: kind must be maskOut, lowerA or upperA`);
  }
}

// ---- backward options --------------------------------------------------------------------------

/** Resolves BackwardOptions: whether `op` accumulates (default true). A non-boolean flag throws. */
export function checkBackwardOptions(op: string, options: BackwardOptions | undefined): boolean {
  const accumulate: unknown = options?.accumulate;
  if (accumulate === undefined) return true;
  if (typeof accumulate !== "boolean") {
    throw new Error(`${op}: options.accumulate must be a boolean, got ${String(accumulate)}`);
  }
  return accumulate;
}

// ---- elementwise -------------------------------------------------------------------------------

/** All tensors f32 with the same number of elements (shapes may differ); returns that size. */
export function checkElementwise(op: string, tensors: Readonly<Record<string, Tensor>>): number {
  let firstName = "";
  let first: Tensor | null = null;
  for (const [name, t] of Object.entries(tensors)) {
    requireDType(op, name, t, "f32");
    if (first === null) {
      first = t;
      firstName = name;
    } else if (t.size !== first.size) {
      throw new Error(
        `${op}: ${describe(firstName, first)} and ${describe(name, t)} have different sizes ${first.size} vs ${t.size}`,
      );
    }
  }
  return first === null ? 0 : first.size;
}

export function checkScalar(op: string, name: string, value: number): void {
  requireFinite(op, name, value);
}

/** rows (R, C) and bias (C), both f32; returns R and C. */
export function checkBias(
  op: string,
  rowsName: string,
  rows: Tensor,
  biasName: string,
  bias: Tensor,
): { rows: number; cols: number } {
  requireDType(op, rowsName, rows, "f32");
  requireDType(op, biasName, bias, "f32");
  requireMinRank(op, rowsName, rows, 1);
  requireRank(op, biasName, bias, 1);
  const dims = rowsCols(rows);
  if (bias.shape[0] !== dims.cols) {
    throw new Error(
      `${op}: ${describe(biasName, bias)} does not match the last dim ${dims.cols} of ${describe(rowsName, rows)}`,
    );
  }
  return dims;
}

// ---- normalisation -----------------------------------------------------------------------------

/**
 * Row-wise normalisation arguments: `rowTensors` share inp's shape (R..., C); `channelTensors`
 * (weight, bias, their grads; null = absent) are (C); `statTensors` (mean, rstd) have R elements.
 */
export function checkNorm(
  op: string,
  inp: Tensor,
  rowTensors: Readonly<Record<string, Tensor>>,
  channelTensors: Readonly<Record<string, Tensor | null>>,
  statTensors: Readonly<Record<string, Tensor>>,
): { rows: number; cols: number } {
  requireDType(op, "inp", inp, "f32");
  requireMinRank(op, "inp", inp, 1);
  const dims = rowsCols(inp);
  for (const [name, t] of Object.entries(rowTensors)) {
    requireDType(op, name, t, "f32");
    requireSameShape(op, name, t, "inp", inp);
  }
  for (const [name, t] of Object.entries(channelTensors)) {
    if (t === null) continue;
    requireDType(op, name, t, "f32");
    requireRank(op, name, t, 1);
    if (t.shape[0] !== dims.cols) {
      throw new Error(
        `${op}: ${describe(name, t)} does not match the last dim ${dims.cols} of ${describe("inp", inp)}`,
      );
    }
  }
  for (const [name, t] of Object.entries(statTensors)) {
    requireDType(op, name, t, "f32");
    requireSize(op, name, t, dims.rows, `one per row of inp ${shapeString(inp.shape)}`);
  }
  return dims;
}

export function checkEps(op: string, eps: number): void {
  requireFinite(op, "eps", eps);
  if (eps < 0) throw new Error(`${op}: eps must be >= 0, got ${eps}`);
}

// ---- attention ---------------------------------------------------------------------------------

export function checkAttentionSoftmax(
  probs: Tensor,
  scores: Tensor,
  scale: number,
  keyLengths: Tensor | undefined,
): { batch: number; heads: number; tq: number; tk: number } {
  const op = "attentionSoftmax";
  requireDType(op, "probs", probs, "f32");
  requireDType(op, "scores", scores, "f32");
  requireRank(op, "scores", scores, 4);
  requireSameShape(op, "probs", probs, "scores", scores);
  requireFinite(op, "scale", scale);
  const [batch, heads, tq, tk] = scores.shape;
  if (keyLengths !== undefined) {
    requireDType(op, "keyLengths", keyLengths, "i32");
    requireRank(op, "keyLengths", keyLengths, 1);
    if (keyLengths.shape[0] !== batch) {
      throw new Error(
        `${op}: ${describe("keyLengths", keyLengths)} must have one entry per batch row of ${describe("scores", scores)}`,
      );
    }
  }
  return { batch, heads, tq, tk };
}

export function checkAttentionSoftmaxBackward(
  dScores: Tensor,
  probs: Tensor,
  dProbs: Tensor,
  scale: number,
): { rows: number; cols: number } {
  const op = "attentionSoftmaxBackward";
  requireDType(op, "dScores", dScores, "f32");
  requireDType(op, "probs", probs, "f32");
  requireDType(op, "dProbs", dProbs, "f32");
  requireMinRank(op, "probs", probs, 1);
  requireSameShape(op, "dScores", dScores, "probs", probs);
  requireSameShape(op, "dProbs", dProbs, "probs", probs);
  requireFinite(op, "scale", scale);
  return rowsCols(probs);
}

/** x (B, T, H, D) with D even; cos, sin (T, D/2). `outName` is out or dInp, `inpName` inp or dOut. */
export function checkRope(
  op: string,
  outName: string,
  out: Tensor,
  inpName: string,
  inp: Tensor,
  cos: Tensor,
  sin: Tensor,
): { batch: number; time: number; heads: number; headDim: number } {
  requireDType(op, outName, out, "f32");
  requireDType(op, inpName, inp, "f32");
  requireDType(op, "cos", cos, "f32");
  requireDType(op, "sin", sin, "f32");
  requireRank(op, inpName, inp, 4);
  requireSameShape(op, outName, out, inpName, inp);
  const [batch, time, heads, headDim] = inp.shape;
  if (headDim % 2 !== 0)
    throw new Error(`${op}: ${describe(inpName, inp)} has an odd head dim ${headDim}`);
  const table = [time, headDim / 2];
  for (const [name, t] of [
    ["cos", cos],
    ["sin", sin],
  ] as const) {
    if (t.rank !== 2 || t.shape[0] !== table[0] || t.shape[1] !== table[1]) {
      throw new Error(
        `${op}: ${describe(name, t)} must be ${shapeString(table)} (T, D/2) for ${describe(inpName, inp)}`,
      );
    }
  }
  return { batch, time, heads, headDim };
}

export function checkPermute0213(
  out: Tensor,
  inp: Tensor,
): { a: number; b: number; c: number; d: number } {
  const op = "permute0213";
  requireDType(op, "out", out, "f32");
  requireDType(op, "inp", inp, "f32");
  requireRank(op, "inp", inp, 4);
  const [a, b, c, d] = inp.shape;
  const expected = [a, c, b, d];
  if (out.rank !== 4 || out.shape.some((x, i) => x !== expected[i])) {
    throw new Error(
      `${op}: ${describe("out", out)} must be ${shapeString(expected)} for ${describe("inp", inp)}`,
    );
  }
  requireNoOverlap(op, "out", out, "inp", inp);
  return { a, b, c, d };
}

export function checkCopyColumns(
  out: Tensor,
  outCol: number,
  inp: Tensor,
  inpCol: number,
  width: number,
): { rows: number; outCols: number; inpCols: number } {
  const op = "copyColumns";
  requireDType(op, "out", out, "f32");
  requireDType(op, "inp", inp, "f32");
  requireRank(op, "out", out, 2);
  requireRank(op, "inp", inp, 2);
  const [rows, outCols] = out.shape;
  const inpCols = inp.shape[1];
  if (inp.shape[0] !== rows) {
    throw new Error(`${op}: ${describe("out", out)} and ${describe("inp", inp)} differ in rows`);
  }
  const fits = (col: number, cols: number) =>
    Number.isSafeInteger(col) && col >= 0 && col + width <= cols;
  if (
    !Number.isSafeInteger(width) ||
    width < 0 ||
    !fits(outCol, outCols) ||
    !fits(inpCol, inpCols)
  ) {
    throw new Error(
      `${op}: columns [${outCol}, +${width}) of ${describe("out", out)} or [${inpCol}, +${width}) of ${describe("inp", inp)} are out of range`,
    );
  }
  requireNoOverlap(op, "out", out, "inp", inp);
  return { rows, outCols, inpCols };
}

export function checkMaskOutsideWindow(
  scores: Tensor,
  window: number,
): { m: number; tq: number; tk: number } {
  const op = "maskOutsideWindow";
  requireDType(op, "scores", scores, "f32");
  requireRank(op, "scores", scores, 3);
  if (!Number.isSafeInteger(window) || window < 1)
    throw new Error(`${op}: window must be a positive integer, got ${window}`);
  const [m, tq, tk] = scores.shape;
  return { m, tq, tk };
}

// ---- embeddings and loss -----------------------------------------------------------------------

/** rows (N, C) (out or dOut), table (V, C), ids (N) i32. Id values are checked by the kernel. */
export function checkEmbedding(
  op: string,
  rowsName: string,
  rows: Tensor,
  tableName: string,
  table: Tensor,
  ids: Tensor,
): { count: number; vocab: number; cols: number } {
  requireDType(op, rowsName, rows, "f32");
  requireDType(op, tableName, table, "f32");
  requireDType(op, "ids", ids, "i32");
  requireRank(op, tableName, table, 2);
  requireRank(op, rowsName, rows, 2);
  const [vocab, cols] = table.shape;
  if (rows.shape[0] !== ids.size || rows.shape[1] !== cols) {
    throw new Error(
      `${op}: ${describe(rowsName, rows)} must be ${shapeString([ids.size, cols])} for ` +
        `${describe("ids", ids)} and ${describe(tableName, table)}`,
    );
  }
  requireNoOverlap(op, rowsName, rows, tableName, table);
  return { count: ids.size, vocab, cols };
}

export function checkCrossEntropy(
  losses: Tensor,
  dLogits: Tensor | null,
  logits: Tensor,
  targets: Tensor,
  ignoreIndex: number,
  gradScale: number,
): { rows: number; vocab: number } {
  const op = "crossEntropy";
  requireDType(op, "losses", losses, "f32");
  requireDType(op, "logits", logits, "f32");
  requireDType(op, "targets", targets, "i32");
  requireRank(op, "logits", logits, 2);
  const [rows, vocab] = logits.shape;
  requireSize(op, "targets", targets, rows, `one per row of logits ${shapeString(logits.shape)}`);
  requireSize(op, "losses", losses, rows, `one per row of logits ${shapeString(logits.shape)}`);
  if (dLogits !== null) {
    requireDType(op, "dLogits", dLogits, "f32");
    requireSameShape(op, "dLogits", dLogits, "logits", logits);
    // in place is allowed: the very same elements (kernels.ts crossEntropy), nothing in between
    if (dLogits.ptr !== logits.ptr) requireNoOverlap(op, "dLogits", dLogits, "logits", logits);
    requireNoOverlap(op, "dLogits", dLogits, "losses", losses);
  }
  requireNoOverlap(op, "losses", losses, "logits", logits);
  if (!Number.isInteger(ignoreIndex))
    throw new Error(`${op}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  requireFinite(op, "gradScale", gradScale);
  return { rows, vocab };
}

// ---- reductions, optimiser, storage --------------------------------------------------------------

export function checkReduce(op: string, a: Tensor): void {
  requireDType(op, "a", a, "f32");
}

/** A reduction into a tensor (sumInto, sumSquaresInto): a is f32, out is one f32 element. */
export function checkReduceInto(op: string, out: Tensor, a: Tensor): void {
  requireLive(op, "out", out);
  requireDType(op, "a", a, "f32");
  requireDType(op, "out", out, "f32");
  if (out.size !== 1) throw new Error(`${op}: ${describe("out", out)} must hold one element`);
}

/** fill: any value for f32 and i32 tensors, 0 for the 16-bit ones (Tensor.fill's rule). */
export function checkFill(out: Tensor, value: number): void {
  requireLive("fill", "out", out);
  checkScalar("fill", "value", value);
  if (out.dtype === "i32" && !Number.isInteger(value)) {
    throw new Error(
      `fill: ${describe("out", out)} is i32 but the value ${value} is not an integer`,
    );
  }
  if (out.dtype !== "f32" && out.dtype !== "i32" && value !== 0) {
    throw new Error(`fill: ${describe("out", out)} is ${out.dtype}; only 0 fills a 16-bit tensor`);
  }
}

export function checkAdamW(
  param: Tensor,
  grad: Tensor,
  m: Tensor,
  v: Tensor,
  options: AdamWOptions,
): number {
  const op = "adamw";
  const size = checkElementwise(op, { param, grad, m, v });
  for (const key of ["lr", "beta1", "beta2", "eps", "weightDecay"] as const)
    requireFinite(op, key, options[key]);
  for (const key of ["beta1", "beta2"] as const) {
    if (!(options[key] >= 0 && options[key] < 1))
      throw new Error(`${op}: ${key} must be in [0, 1), got ${options[key]}`);
  }
  if (!Number.isInteger(options.step) || options.step < 1) {
    throw new Error(`${op}: step must be an integer >= 1 (1-based), got ${options.step}`);
  }
  return size;
}

export function checkSGD(
  param: Tensor,
  grad: Tensor,
  momentumBuf: Tensor | null,
  options: SGDOptions,
): number {
  const op = "sgd";
  const size =
    momentumBuf === null
      ? checkElementwise(op, { param, grad })
      : checkElementwise(op, { param, grad, momentumBuf });
  for (const key of ["lr", "momentum", "dampening", "weightDecay"] as const)
    requireFinite(op, key, options[key]);
  if ((momentumBuf === null) !== (options.momentum === 0)) {
    throw new Error(
      `${op}: a momentum buffer goes with momentum > 0 and only with it (momentum ${options.momentum})`,
    );
  }
  return size;
}

/** out (n, f32) and the codes and scales QuantCodes describes for n elements. */
export function checkDequantize(out: Tensor, q: QuantCodes): number {
  const op = "dequantize";
  requireDType(op, "out", out, "f32");
  requireDType(op, "codes", q.codes, "u8");
  requireDType(op, "scales", q.scales, "f32");
  const n = out.size;
  const { kind, blocksize } = q;
  if (kind !== "int8" && kind !== "nf4")
    throw new Error(`${op}: kind must be "int8" or "nf4", got ${String(kind)}`);
  if (!Number.isSafeInteger(blocksize) || blocksize < 1)
    throw new Error(`${op}: blocksize must be a positive integer, got ${blocksize}`);
  const codes = kind === "int8" ? n : Math.ceil(n / 2);
  if (q.codes.size !== codes || q.scales.size !== Math.ceil(n / blocksize)) {
    throw new Error(
      `${op}: ${n} ${kind} weights in blocks of ${blocksize} take ${codes} code bytes and ` +
        `${Math.ceil(n / blocksize)} scales, got ${describe("codes", q.codes)} and ${describe("scales", q.scales)}`,
    );
  }
  requireNoOverlap(op, "out", out, "codes", q.codes);
  requireNoOverlap(op, "out", out, "scales", q.scales);
  return n;
}

export function checkConvert(out: Tensor, inp: Tensor): number {
  const op = "convert";
  requireDType(op, "out", out, "f32", "f16", "bf16");
  requireDType(op, "inp", inp, "f32", "f16", "bf16");
  if (out.size !== inp.size) {
    throw new Error(
      `${op}: ${describe("out", out)} and ${describe("inp", inp)} have different sizes ${out.size} vs ${inp.size}`,
    );
  }
  if (out.dtype !== inp.dtype) requireNoOverlap(op, "out", out, "inp", inp);
  return out.size;
}

export function checkCopy(out: Tensor, inp: Tensor): number {
  const op = "copy";
  requireLive(op, "out", out);
  requireLive(op, "inp", inp);
  if (out.dtype !== inp.dtype) {
    throw new Error(
      `${op}: ${describe("out", out)} is ${out.dtype} but ${describe("inp", inp)} is ${inp.dtype}`,
    );
  }
  if (out.size !== inp.size) {
    throw new Error(
      `${op}: ${describe("out", out)} and ${describe("inp", inp)} have different sizes ${out.size} vs ${inp.size}`,
    );
  }
  return out.size;
}
