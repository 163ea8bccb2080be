// The `wasm` Kernels: WebAssembly SIMD128 code generated from TypeScript (asm.ts, gemm.ts,
// elementwise.ts, softmax.ts, norms.ts, rope.ts, permute.ts), run on a pool of worker threads that
// share the Heap's memory (pool.ts). Native here: matmul (its host side in gemm-host.ts); add,
// mul, scale, axpy, silu, swiglu and their backwards; attentionSoftmax and its backward;
// crossEntropy; rmsnorm, layernorm, rope and their backwards; permute0213; embedding and its
// backward (row copies / row adds on the calling thread). Every other op
// delegates to the reference kernels until it gets a SIMD port (as do calls whose outputs
// partially overlap an input, and norm backwards whose gradient outputs overlap anything).
// BackwardOptions ({ accumulate: false }) select separately generated overwriting variants of the
// backwards (no load of the old gradient), and are passed on to the reference when delegating.
//
// Contract: one wasm Kernels per Heap at a time (the pool's control block lives in the heap's
// reserved bytes); dispose() stops the workers and frees the scratch buffers. Relaxed SIMD (FMA)
// is used when the runtime validates it (Node 20: --experimental-wasm-relaxed-simd), else plain
// SIMD128.

import { cpuCount } from "../../platform/threads.js";
import type { Heap } from "../../tensor/heap.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { Kernels } from "../kernels.js";
import { checkIds } from "../ref/embedding.js";
import { createRefKernels } from "../ref/index.js";
import {
  checkAttentionSoftmax,
  checkAttentionSoftmaxBackward,
  checkBackwardOptions,
  checkCrossEntropy,
  checkElementwise,
  checkEmbedding,
  checkEps,
  checkNorm,
  checkPermute0213,
  checkRope,
  checkScalar,
} from "../validate.js";
import { ModuleBuilder, relaxedSimdSupported, simdSupported } from "./asm.js";
import { EW_ARG, EW_OPS, type EwOp, elementwiseThreadJob, emitElementwise } from "./elementwise.js";
import { emitGemm } from "./gemm.js";
import { emitGemmCausal } from "./gemm-causal.js";
import { gemmThreadJob } from "./gemm-driver.js";
import { allocGemmScratch, createMatmul } from "./gemm-host.js";
import { emitNorms, NORM_ARG, normThreadJob } from "./norms.js";
import { emitPermute, PERM_ARG, permuteThreadJob } from "./permute.js";
import { CONTROL, ThreadPool } from "./pool.js";
import { emitRope, ROPE_ARG, ropeThreadJob } from "./rope.js";
import { CE_ARG, crossEntropyThreadJob, emitSoftmax, SM_ARG, softmaxThreadJob } from "./softmax.js";

export { GEMM_K_SLICE } from "./gemm-host.js";

export interface WasmKernelsOptions {
  /** Threads per kernel call, the caller included. Default: every core. */
  threads?: number;
  /** Use relaxed SIMD FMA. Default: when the runtime supports it. true on a runtime without it throws. */
  relaxedSimd?: boolean;
  /** How long an idle worker spins before it parks (ms). Default 20. */
  spinMs?: number;
}

export interface WasmKernels extends Kernels {
  /** Whether the GEMM micro-kernel uses relaxed-SIMD FMA. */
  readonly relaxedSimd: boolean;
}

/** Pool job codes: index + 1 in the jobs list given to the pool. */
const OP_GEMM = 1;
const OP_ELEMENTWISE = 2;
const OP_SOFTMAX = 3;
const OP_CROSS_ENTROPY = 4;
const OP_NORM = 5;
const OP_ROPE = 6;
const OP_PERMUTE = 7;
/** Row ops (norms, rope, permute): about this many floats per chunk. */
const ROW_CHUNK_ELEMS = 16384;
/** Partial dWeight sums of the norm backwards (one row of C per chunk): scratch floats. */
const NORM_PARTIAL_FLOATS = 1 << 17;
/** Softmax rows: about this many elements per chunk; key lengths copied into the control block. */
const SM_CHUNK_ELEMS = 16384;
const SM_MAX_KEY_LENGTHS = 32768;
/** Elementwise ops: elements per chunk, and the size below which one thread does it all. */
const EW_CHUNK = 16384;
const EW_PARALLEL_MIN = 65536;
export async function createWasmKernels(
  heap: Heap,
  options: WasmKernelsOptions = {},
): Promise<WasmKernels> {
  if (!simdSupported())
    throw new Error("wasm kernels: this runtime does not support WebAssembly SIMD128");
  const relaxedAvailable = relaxedSimdSupported();
  if (options.relaxedSimd === true && !relaxedAvailable) {
    throw new Error(
      "wasm kernels: relaxedSimd: true, but this runtime does not validate relaxed SIMD " +
        "(Node 20 needs --experimental-wasm-relaxed-simd)",
    );
  }
  const relaxed = options.relaxedSimd ?? relaxedAvailable;
  const threads = options.threads ?? (await cpuCount());
  const spinMs = options.spinMs ?? 20;
  // register tiles MR x 8: 6 x 8 with FMA, 5 x 8 without (see gemm.ts for the register budget),
  // and 4 x 8 for products with few rows (pickTileRows)
  const mrMain = relaxed ? 6 : 5;
  const mrs = [mrMain, 4];

  const builder = new ModuleBuilder({
    minimumPages: 1,
    maximumPages: heap.maxBytes / 65536,
    shared: true,
  });
  emitGemm(builder, { relaxed, mrs });
  emitGemmCausal(builder);
  emitElementwise(builder);
  emitSoftmax(builder);
  emitNorms(builder);
  emitRope(builder);
  emitPermute(builder);
  const module = await WebAssembly.compile(builder.encode());
  const pool = await ThreadPool.create({
    memory: heap.memory,
    module,
    jobs: [
      gemmThreadJob,
      elementwiseThreadJob,
      softmaxThreadJob,
      crossEntropyThreadJob,
      normThreadJob,
      ropeThreadJob,
      permuteThreadJob,
    ],
    threads,
    spinMs,
  });

  // GEMM packing scratch per thread (gemm-host.ts), and (NORM_PARTIAL_FLOATS) chunk partials of
  // the norm backwards' dWeight
  let scratch: number[] = []; // allocGemmScratch frees its own blocks when it fails
  try {
    scratch = allocGemmScratch(heap, pool, threads, mrs);
    scratch.push(heap.alloc(NORM_PARTIAL_FLOATS * 4));
  } catch (err) {
    for (const p of scratch) heap.free(p);
    await pool.dispose();
    throw err;
  }
  const normPartials = scratch[scratch.length - 1];
  const matmul = createMatmul(pool, OP_GEMM, { threads, relaxed, mrMain });
  const ref = createRefKernels(heap);

  /**
   * Runs elementwise op `op` over n elements. Outputs must each be an input's very buffer or
   * disjoint from every input (checked by the callers with `canRunInPlace`).
   */
  function elementwise(op: EwOp, outs: Tensor[], ins: Tensor[], n: number, scalar = 0): void {
    if (n === 0) return;
    pool.prepare();
    const ctl = pool.ctl;
    const g = CONTROL.args;
    ctl[g + EW_ARG.op] = EW_OPS.indexOf(op);
    ctl[g + EW_ARG.out0] = outs[0].ptr;
    ctl[g + EW_ARG.out1] = outs.length > 1 ? outs[1].ptr : 0;
    ctl[g + EW_ARG.in0] = ins[0].ptr;
    ctl[g + EW_ARG.in1] = ins.length > 1 ? ins[1].ptr : 0;
    ctl[g + EW_ARG.in2] = ins.length > 2 ? ins[2].ptr : 0;
    ctl[g + EW_ARG.n] = n;
    pool.ctlF32[g + EW_ARG.scalar] = scalar;
    ctl[g + EW_ARG.chunk] = EW_CHUNK;
    pool.run(OP_ELEMENTWISE, n < EW_PARALLEL_MIN ? 1 : threads, Math.ceil(n / EW_CHUNK));
  }

  /**
   * Runs softmax rows of length tk over `rows` rows. dir (SM_ARG.dir): 0 forward, 1 backward
   * (accumulating into dst), 2 backward overwriting dst.
   */
  function softmaxRows(
    dir: 0 | 1 | 2,
    ptrs: { src: number; dst: number; aux: number },
    dims: { rows: number; heads: number; tq: number; tk: number },
    scale: number,
    causal: boolean,
    keyLengths: Tensor | undefined,
  ): void {
    const { rows, tk } = dims;
    if (rows === 0 || tk === 0) return;
    pool.prepare();
    const ctl = pool.ctl;
    const g = CONTROL.args;
    ctl[g + SM_ARG.dir] = dir;
    ctl[g + SM_ARG.src] = ptrs.src;
    ctl[g + SM_ARG.dst] = ptrs.dst;
    ctl[g + SM_ARG.aux] = ptrs.aux;
    ctl[g + SM_ARG.rows] = rows;
    ctl[g + SM_ARG.heads] = dims.heads;
    ctl[g + SM_ARG.tq] = dims.tq;
    ctl[g + SM_ARG.tk] = tk;
    pool.ctlF32[g + SM_ARG.scale] = scale;
    ctl[g + SM_ARG.causal] = causal ? 1 : 0;
    ctl[g + SM_ARG.hasKeyLengths] = keyLengths === undefined ? 0 : 1;
    if (keyLengths !== undefined) ctl.set(keyLengths.i32(), g + SM_ARG.keyLengths);
    const perChunk = Math.max(1, Math.floor(SM_CHUNK_ELEMS / tk));
    ctl[g + SM_ARG.rowsPerChunk] = perChunk;
    pool.run(OP_SOFTMAX, rows * tk < EW_PARALLEL_MIN ? 1 : threads, Math.ceil(rows / perChunk));
  }

  /**
   * Runs a norm pass (NORM_ARG layout: 0 rms_fwd, 1 rms_bwd, 2 ln_fwd, 3 ln_bwd) over rows of cols
   * floats. Backwards with dWeight / dBias: chunk partials in normPartials (cols floats per chunk
   * for RMSNorm, 2 cols for LayerNorm: see norms.ts), then added into them in chunk order.
   * `overwriteDInp`: the backwards write dInp instead of adding to it (dWeight, dBias still add).
   */
  function normRows(
    op: 0 | 1 | 2 | 3,
    ptrs: {
      out: number;
      rstd: number;
      inp: number;
      weight: number;
      dOut: number;
      bias: number;
      mean: number;
    },
    grads: { dWeight: Tensor | null; dBias: Tensor | null },
    rows: number,
    cols: number,
    eps: number,
    overwriteDInp = false,
  ): void {
    if (rows === 0 || cols === 0) return;
    const { dWeight, dBias } = grads;
    const withPartials = dWeight !== null || dBias !== null;
    const partialFloats = op === 3 ? 2 * cols : cols;
    let perChunk = Math.max(1, Math.floor(ROW_CHUNK_ELEMS / cols));
    const maxChunks = Math.floor(NORM_PARTIAL_FLOATS / partialFloats);
    if (withPartials && Math.ceil(rows / perChunk) > maxChunks)
      perChunk = Math.ceil(rows / maxChunks);
    const chunks = Math.ceil(rows / perChunk);
    pool.prepare();
    const ctl = pool.ctl;
    const g = CONTROL.args;
    ctl[g + NORM_ARG.op] = op;
    ctl[g + NORM_ARG.out] = ptrs.out;
    ctl[g + NORM_ARG.rstd] = ptrs.rstd;
    ctl[g + NORM_ARG.inp] = ptrs.inp;
    ctl[g + NORM_ARG.weight] = ptrs.weight;
    ctl[g + NORM_ARG.dOut] = ptrs.dOut;
    ctl[g + NORM_ARG.part] = withPartials ? normPartials : 0;
    ctl[g + NORM_ARG.bias] = ptrs.bias;
    ctl[g + NORM_ARG.mean] = ptrs.mean;
    ctl[g + NORM_ARG.rows] = rows;
    ctl[g + NORM_ARG.cols] = cols;
    ctl[g + NORM_ARG.rowsPerChunk] = perChunk;
    ctl[g + NORM_ARG.overwrite] = overwriteDInp ? 1 : 0;
    new Float64Array(ctl.buffer, ctl.byteOffset + 4 * (g + NORM_ARG.eps), 1)[0] = eps;
    pool.run(OP_NORM, rows * cols < EW_PARALLEL_MIN ? 1 : threads, chunks);
    const colsumAdd = pool.exports.colsum_add as (...args: number[]) => void;
    const stride = 4 * partialFloats;
    if (dWeight !== null) colsumAdd(dWeight.ptr, normPartials, chunks, cols, stride);
    if (dBias !== null) colsumAdd(dBias.ptr, normPartials + 4 * cols, chunks, cols, stride);
  }

  /**
   * Runs rope over the (b, t) rows of x (B, T, H, D). kind (ROPE_ARG.backward): 0 forward,
   * 1 backward (accumulating into out), 2 backward overwriting out.
   */
  function ropeRows(
    kind: 0 | 1 | 2,
    out: Tensor,
    inp: Tensor,
    cos: Tensor,
    sin: Tensor,
    dims: { batch: number; time: number; heads: number; headDim: number },
  ): void {
    const rows = dims.batch * dims.time;
    const rowFloats = dims.heads * dims.headDim;
    if (rows === 0 || rowFloats === 0) return;
    const perChunk = Math.max(1, Math.floor(ROW_CHUNK_ELEMS / rowFloats));
    pool.prepare();
    const ctl = pool.ctl;
    const g = CONTROL.args;
    ctl[g + ROPE_ARG.out] = out.ptr;
    ctl[g + ROPE_ARG.inp] = inp.ptr;
    ctl[g + ROPE_ARG.cos] = cos.ptr;
    ctl[g + ROPE_ARG.sin] = sin.ptr;
    ctl[g + ROPE_ARG.rows] = rows;
    ctl[g + ROPE_ARG.time] = dims.time;
    ctl[g + ROPE_ARG.heads] = dims.heads;
    ctl[g + ROPE_ARG.half] = dims.headDim / 2;
    ctl[g + ROPE_ARG.backward] = kind;
    ctl[g + ROPE_ARG.rowsPerChunk] = perChunk;
    pool.run(OP_ROPE, rows * rowFloats < EW_PARALLEL_MIN ? 1 : threads, Math.ceil(rows / perChunk));
  }

  let disposed = false;
  const kernels: WasmKernels = {
    ...delegate(ref),
    name: "wasm",
    threads,
    heap,
    relaxedSimd: relaxed,
    matmul,
    add(out, a, b) {
      const n = checkElementwise("add", { out, a, b });
      if (canRunInPlace([out], [a, b])) elementwise("add", [out], [a, b], n);
      else ref.add(out, a, b);
    },
    mul(out, a, b) {
      const n = checkElementwise("mul", { out, a, b });
      if (canRunInPlace([out], [a, b])) elementwise("mul", [out], [a, b], n);
      else ref.mul(out, a, b);
    },
    scale(out, a, alpha) {
      const n = checkElementwise("scale", { out, a });
      checkScalar("scale", "alpha", alpha);
      if (canRunInPlace([out], [a])) elementwise("scale", [out], [a], n, alpha);
      else ref.scale(out, a, alpha);
    },
    axpy(out, a, alpha) {
      const n = checkElementwise("axpy", { out, a });
      checkScalar("axpy", "alpha", alpha);
      if (canRunInPlace([out], [a])) elementwise("axpy", [out], [a], n, alpha);
      else ref.axpy(out, a, alpha);
    },
    silu(out, inp) {
      const n = checkElementwise("silu", { out, inp });
      if (canRunInPlace([out], [inp])) elementwise("silu", [out], [inp], n);
      else ref.silu(out, inp);
    },
    siluBackward(dInp, inp, dOut, options) {
      const n = checkElementwise("siluBackward", { dInp, inp, dOut });
      const accumulate = checkBackwardOptions("siluBackward", options);
      if (canRunInPlace([dInp], [inp, dOut])) {
        elementwise(accumulate ? "siluBackward" : "siluBackwardOverwrite", [dInp], [inp, dOut], n);
      } else ref.siluBackward(dInp, inp, dOut, options);
    },
    swiglu(out, gate, up) {
      const n = checkElementwise("swiglu", { out, gate, up });
      if (canRunInPlace([out], [gate, up])) elementwise("swiglu", [out], [gate, up], n);
      else ref.swiglu(out, gate, up);
    },
    swigluBackward(dGate, dUp, gate, up, dOut, options) {
      const n = checkElementwise("swigluBackward", { dGate, dUp, gate, up, dOut });
      const accumulate = checkBackwardOptions("swigluBackward", options);
      if (canRunInPlace([dGate, dUp], [gate, up, dOut]) && !overlaps(dGate, dUp)) {
        const op = accumulate ? "swigluBackward" : "swigluBackwardOverwrite";
        elementwise(op, [dGate, dUp], [gate, up, dOut], n);
      } else ref.swigluBackward(dGate, dUp, gate, up, dOut, options);
    },
    crossEntropy(losses, dLogits, logits, targets, options = {}) {
      const ignoreIndex = options.ignoreIndex ?? -100;
      const gradScale = options.gradScale ?? 1;
      const { rows, vocab } = checkCrossEntropy(
        losses,
        dLogits,
        logits,
        targets,
        ignoreIndex,
        gradScale,
      );
      if (vocab === 0) return ref.crossEntropy(losses, dLogits, logits, targets, options);
      // targets first, as the reference does: a bad one throws before anything is written
      const t = targets.i32();
      let counted = 0;
      for (let n = 0; n < rows; n++) {
        if (t[n] === ignoreIndex) continue;
        if (t[n] < 0 || t[n] >= vocab) {
          throw new RangeError(
            `crossEntropy: targets[${n}] = ${t[n]} is outside [0, ${vocab}) and is not the ignore index ${ignoreIndex}`,
          );
        }
        counted++;
      }
      if (rows === 0) return 0;
      pool.prepare();
      const ctl = pool.ctl;
      const g = CONTROL.args;
      ctl[g + CE_ARG.logits] = logits.ptr;
      ctl[g + CE_ARG.dLogits] = dLogits === null ? 0 : dLogits.ptr;
      ctl[g + CE_ARG.targets] = targets.ptr;
      ctl[g + CE_ARG.losses] = losses.ptr;
      ctl[g + CE_ARG.rows] = rows;
      ctl[g + CE_ARG.vocab] = vocab;
      ctl[g + CE_ARG.ignoreIndex] = ignoreIndex;
      pool.ctlF32[g + CE_ARG.gradScale] = gradScale;
      const perChunk = Math.max(1, Math.floor(SM_CHUNK_ELEMS / vocab));
      ctl[g + CE_ARG.rowsPerChunk] = perChunk;
      pool.run(
        OP_CROSS_ENTROPY,
        rows * vocab < EW_PARALLEL_MIN ? 1 : threads,
        Math.ceil(rows / perChunk),
      );
      return counted;
    },
    attentionSoftmax(probs, scores, options) {
      const { batch, heads, tq, tk } = checkAttentionSoftmax(
        probs,
        scores,
        options.scale,
        options.keyLengths,
      );
      const kl = options.keyLengths;
      if (!canRunInPlace([probs], [scores]) || (kl !== undefined && batch > SM_MAX_KEY_LENGTHS)) {
        ref.attentionSoftmax(probs, scores, options);
        return;
      }
      softmaxRows(
        0,
        { src: scores.ptr, dst: probs.ptr, aux: 0 },
        { rows: batch * heads * tq, heads, tq, tk },
        options.scale,
        options.causal === true,
        kl,
      );
    },
    attentionSoftmaxBackward(dScores, probs, dProbs, scale, options) {
      const { rows, cols } = checkAttentionSoftmaxBackward(dScores, probs, dProbs, scale);
      const accumulate = checkBackwardOptions("attentionSoftmaxBackward", options);
      if (!canRunInPlace([dScores], [probs, dProbs])) {
        ref.attentionSoftmaxBackward(dScores, probs, dProbs, scale, options);
        return;
      }
      softmaxRows(
        accumulate ? 1 : 2,
        { src: probs.ptr, dst: dScores.ptr, aux: dProbs.ptr },
        { rows, heads: 1, tq: 1, tk: cols },
        scale,
        false,
        undefined,
      );
    },
    rmsnorm(out, rstd, inp, weight, eps) {
      const { rows, cols } = checkNorm("rmsnorm", inp, { out }, { weight }, { rstd });
      checkEps("rmsnorm", eps);
      if (
        !canRunInPlace([out], [inp]) ||
        !disjoint([out, weight, rstd]) ||
        !disjoint([inp, weight, rstd])
      ) {
        ref.rmsnorm(out, rstd, inp, weight, eps);
        return;
      }
      const ptrs = {
        out: out.ptr,
        rstd: rstd.ptr,
        inp: inp.ptr,
        weight: weight.ptr,
        dOut: 0,
        bias: 0,
        mean: 0,
      };
      normRows(0, ptrs, { dWeight: null, dBias: null }, rows, cols, eps);
    },
    rmsnormBackward(dInp, dWeight, dOut, inp, weight, rstd, options) {
      const { rows, cols } = checkNorm(
        "rmsnormBackward",
        inp,
        { dInp, dOut },
        { weight, dWeight },
        { rstd },
      );
      const accumulate = checkBackwardOptions("rmsnormBackward", options);
      // every output disjoint from every input and from each other (the reference reads inputs
      // after writing dInp, so even an exact alias would give another result)
      if (
        !outputsDisjoint([dInp, dWeight], [dOut, inp, weight, rstd]) ||
        cols > NORM_PARTIAL_FLOATS
      ) {
        ref.rmsnormBackward(dInp, dWeight, dOut, inp, weight, rstd, options);
        return;
      }
      const ptrs = {
        out: dInp.ptr,
        rstd: rstd.ptr,
        inp: inp.ptr,
        weight: weight.ptr,
        dOut: dOut.ptr,
        bias: 0,
        mean: 0,
      };
      normRows(1, ptrs, { dWeight, dBias: null }, rows, cols, 0, !accumulate);
    },
    layernorm(out, mean, rstd, inp, weight, bias, eps) {
      const { rows, cols } = checkNorm("layernorm", inp, { out }, { weight, bias }, { mean, rstd });
      checkEps("layernorm", eps);
      if (
        !canRunInPlace([out], [inp]) ||
        !disjoint([out, weight, bias, mean, rstd]) ||
        !disjoint([inp, weight, bias, mean, rstd])
      ) {
        ref.layernorm(out, mean, rstd, inp, weight, bias, eps);
        return;
      }
      const ptrs = {
        out: out.ptr,
        rstd: rstd.ptr,
        inp: inp.ptr,
        weight: weight.ptr,
        dOut: 0,
        bias: bias.ptr,
        mean: mean.ptr,
      };
      normRows(2, ptrs, { dWeight: null, dBias: null }, rows, cols, eps);
    },
    layernormBackward(dInp, dWeight, dBias, dOut, inp, weight, mean, rstd, options) {
      const { rows, cols } = checkNorm(
        "layernormBackward",
        inp,
        { dInp, dOut },
        { weight, dWeight, dBias },
        { mean, rstd },
      );
      const accumulate = checkBackwardOptions("layernormBackward", options);
      if (
        !outputsDisjoint([dInp, dWeight, dBias], [dOut, inp, weight, mean, rstd]) ||
        2 * cols > NORM_PARTIAL_FLOATS
      ) {
        ref.layernormBackward(dInp, dWeight, dBias, dOut, inp, weight, mean, rstd, options);
        return;
      }
      const ptrs = {
        out: dInp.ptr,
        rstd: rstd.ptr,
        inp: inp.ptr,
        weight: weight.ptr,
        dOut: dOut.ptr,
        bias: 0,
        mean: mean.ptr,
      };
      normRows(3, ptrs, { dWeight, dBias }, rows, cols, 0, !accumulate);
    },
    rope(out, inp, cos, sin) {
      const dims = checkRope("rope", "out", out, "inp", inp, cos, sin);
      if (!canRunInPlace([out], [inp]) || !disjoint([out, cos]) || !disjoint([out, sin])) {
        ref.rope(out, inp, cos, sin);
        return;
      }
      ropeRows(0, out, inp, cos, sin, dims);
    },
    ropeBackward(dInp, dOut, cos, sin, options) {
      const dims = checkRope("ropeBackward", "dInp", dInp, "dOut", dOut, cos, sin);
      const accumulate = checkBackwardOptions("ropeBackward", options);
      if (!canRunInPlace([dInp], [dOut]) || !disjoint([dInp, cos]) || !disjoint([dInp, sin])) {
        ref.ropeBackward(dInp, dOut, cos, sin, options);
        return;
      }
      ropeRows(accumulate ? 1 : 2, dInp, dOut, cos, sin, dims);
    },
    permute0213(out, inp) {
      const { a, b, c, d } = checkPermute0213(out, inp); // also: out does not overlap inp
      const rows = a * b * c;
      if (rows === 0 || d === 0) return;
      const perChunk = Math.max(1, Math.floor(ROW_CHUNK_ELEMS / d));
      pool.prepare();
      const ctl = pool.ctl;
      const g = CONTROL.args;
      ctl[g + PERM_ARG.out] = out.ptr;
      ctl[g + PERM_ARG.inp] = inp.ptr;
      ctl[g + PERM_ARG.a] = a;
      ctl[g + PERM_ARG.b] = b;
      ctl[g + PERM_ARG.c] = c;
      ctl[g + PERM_ARG.d] = d;
      ctl[g + PERM_ARG.rowsPerChunk] = perChunk;
      pool.run(OP_PERMUTE, rows * d < EW_PARALLEL_MIN ? 1 : threads, Math.ceil(rows / perChunk));
    },
    // Row gather / scatter-add on the calling thread (memory-bound, a few rows of a few KiB): one
    // perm_copy (gather) or in-place "add" elementwise call (scatter) per row, instead of the
    // reference's element loop. Ids are all checked first, so a bad one writes nothing; repeated
    // ids add up in order, as the reference does; ids overlapping the output go to the reference.
    embedding(out, table, ids) {
      const { vocab, cols } = checkEmbedding("embedding", "out", out, "table", table, ids);
      if (overlaps(out, ids)) return ref.embedding(out, table, ids);
      const idv = ids.i32();
      checkIds("embedding", idv, vocab);
      const copyRow = pool.exports.perm_copy as (
        dst: number,
        src: number,
        rows: number,
        d: number,
        srcStride: number,
      ) => void;
      const rowBytes = cols * 4;
      for (let n = 0; n < idv.length; n++)
        copyRow(out.ptr + n * rowBytes, table.ptr + idv[n] * rowBytes, 1, cols, 0);
    },
    embeddingBackward(dTable, dOut, ids) {
      const { vocab, cols } = checkEmbedding(
        "embeddingBackward",
        "dOut",
        dOut,
        "dTable",
        dTable,
        ids,
      );
      if (overlaps(dTable, ids)) return ref.embeddingBackward(dTable, dOut, ids);
      const idv = ids.i32();
      checkIds("embeddingBackward", idv, vocab);
      const addRow = pool.exports[`ew${EW_OPS.indexOf("add")}`] as (...args: number[]) => void;
      const rowBytes = cols * 4;
      for (let n = 0; n < idv.length; n++) {
        const dst = dTable.ptr + idv[n] * rowBytes;
        addRow(dst, 0, dst, dOut.ptr + n * rowBytes, 0, cols, 0); // dTable[id] += dOut[n]
      }
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await pool.dispose();
      for (const p of scratch) heap.free(p);
      await ref.dispose();
    },
  };
  return kernels;
}

function overlaps(a: Tensor, b: Tensor): boolean {
  return (
    a.byteLength > 0 &&
    b.byteLength > 0 &&
    a.ptr < b.ptr + b.byteLength &&
    b.ptr < a.ptr + a.byteLength
  );
}

/** True when every (non-null) output is disjoint from every input and from the other outputs. */
function outputsDisjoint(outs: (Tensor | null)[], ins: Tensor[]): boolean {
  const o = outs.filter((t): t is Tensor => t !== null);
  return disjoint(o) && o.every((t) => ins.every((i) => !overlaps(t, i)));
}

/** True when no two of the tensors share a byte. */
function disjoint(tensors: Tensor[]): boolean {
  return tensors.every((t, i) => tensors.every((u, j) => j <= i || !overlaps(t, u)));
}

/**
 * True when every output is either exactly an input's buffer or disjoint from all inputs: then a
 * chunked, vectorised pass gives the reference result. Partial overlaps go to the reference.
 */
function canRunInPlace(outs: Tensor[], ins: Tensor[]): boolean {
  return outs.every((o) =>
    ins.every((i) => (o.ptr === i.ptr && o.byteLength === i.byteLength) || !overlaps(o, i)),
  );
}

/** The methods of `ref` bound to it (through its prototype chain), for delegation. */
function delegate(ref: Kernels): Omit<Kernels, "name" | "threads" | "heap"> {
  const out: { [key: string]: unknown } = {};
  for (
    let o: object | null = ref;
    o !== null && o !== Object.prototype;
    o = Object.getPrototypeOf(o)
  ) {
    for (const key of Object.getOwnPropertyNames(o)) {
      const v = (ref as unknown as { [key: string]: unknown })[key];
      if (key !== "constructor" && typeof v === "function" && !(key in out)) {
        out[key] = (v as (...args: unknown[]) => unknown).bind(ref);
      }
    }
  }
  return out as unknown as Omit<Kernels, "name" | "threads" | "heap">;
}
