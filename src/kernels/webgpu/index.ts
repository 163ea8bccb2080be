// createWebGpuKernels: the Kernels interface on a WebGPU device (docs/engine-notes.md, "The
// WebGPU engine"). Tensors stay in the Heap; the engine keeps a device mirror of it (mirror.ts)
// and every method records GPU work on the mirror and returns: inputs are uploaded where the heap
// is newer, outputs become device-newer, and the host sees results after `await download(...)`
// (or `sync()`). Validation is the shared kernels/validate.ts, as on every engine.
//
// What differs from the CPU engines, because a GPU cannot answer synchronously:
// - sum, max and sumSquares throw; sumInto, maxInto and sumSquaresInto write a (1) tensor instead;
// - ids of embedding and targets of crossEntropy are checked (and crossEntropy's count is taken)
//   on the host, so they must not be device-newer (they are batch data the host wrote);
// - GPU validation errors surface at the next download or sync;
// - optional Kernels methods exist here only: dequantize (int8 / nf4 frozen weights expanded
//   on the device, quant.ts), readback (a tensor's values at a point of the recorded work, for
//   bounded estimation) and relu / reluBackward (T5 v1.0's feed-forward, which the CPU engines
//   run on the host).
// Workgroup sizes: 256 invocations for the elementwise and row kernels (the WebGPU core limits
// guarantee it); the GEMM tile follows maxComputeInvocationsPerWorkgroup.
// Subgroups: where the device has them (GpuContext.subgroups), the row reductions and the GEMM
// use their subgroup variants (rows.ts, gemm.ts); WebGpuOptions.subgroups false keeps the
// workgroup-memory kernels (the fallback for devices without subgroups), for tests and benches.

import type { Heap } from "../../tensor/heap.js";
import type { Tensor } from "../../tensor/tensor.js";
import type {
  AdamWOptions,
  AttentionSoftmaxOptions,
  BackwardOptions,
  CrossEntropyOptions,
  GeluApproximate,
  Kernels,
  MatmulOptions,
  QuantCodes,
  SGDOptions,
} from "../kernels.js";
import { checkIds } from "../ref/embedding.js";
import * as check from "../validate.js";
import { type GpuContext, openGpu } from "./device.js";
import { type BoundTensor, Dispatcher, type ShaderSpec } from "./dispatch.js";
import * as ew from "./elementwise.js";
import { GEMM_CAUSAL, GEMM_FLAGS, gemmSpec } from "./gemm.js";
import * as layout from "./layout.js";
import { Mirror } from "./mirror.js";
import { dequantizeSpec } from "./quant.js";
import * as rows from "./rows.js";

const MAX_GROUPS = 65535;

export interface WebGpuOptions {
  /** Use the subgroup kernels where the device has subgroups (default true). */
  subgroups?: boolean;
}

const r = (tensor: Tensor): BoundTensor => ({ tensor, access: "read" });
const w = (tensor: Tensor): BoundTensor => ({ tensor, access: "write" });
const rw = (tensor: Tensor): BoundTensor => ({ tensor, access: "readwrite" });
/** An activation gradient: overwritten (accumulate false) or added to. */
const grad = (tensor: Tensor, accumulate: boolean): BoundTensor =>
  accumulate ? rw(tensor) : w(tensor);

/** Workgroups for a grid-stride loop over n items. */
function strideGroups(n: number): [number, number, number] {
  return [Math.min(MAX_GROUPS, Math.ceil(n / ew.WG)), 1, 1];
}
/** Workgroups for one workgroup per row (rows.ts numbers them wid.x + ROW_GRID wid.y). */
function rowGroups(count: number): [number, number, number] {
  return [Math.min(count, rows.ROW_GRID), Math.ceil(count / rows.ROW_GRID), 1];
}

export class WebGpuKernels implements Kernels {
  readonly name = "webgpu" as const;
  readonly threads = 1;
  readonly deferred = true;
  readonly heap: Heap;
  readonly gpu: GpuContext;
  private readonly mirror: Mirror;
  private readonly dispatcher: Dispatcher;
  private readonly errors: string[] = [];
  /** GEMM invocations per workgroup along columns and rows. */
  private readonly gemmShape: { tx: number; ty: number };
  private readonly gemm: ShaderSpec;
  /** Whether the kernels use subgroup operations (the device has them and options allow). */
  readonly subgroups: boolean;

  constructor(gpu: GpuContext, heap: Heap, options: WebGpuOptions = {}) {
    this.gpu = gpu;
    this.subgroups = gpu.subgroups && options.subgroups !== false;
    this.heap = heap;
    this.mirror = new Mirror(gpu, heap);
    this.dispatcher = new Dispatcher(this.mirror);
    gpu.device.onuncapturederror = (event) => this.errors.push(event.error.message);
    const limits = gpu.limits;
    const big =
      limits.maxComputeInvocationsPerWorkgroup >= 256 && limits.maxComputeWorkgroupSizeY >= 16;
    this.gemmShape = { tx: 16, ty: big ? 16 : 8 };
    this.gemm = gemmSpec(this.gemmShape, this.subgroups);
  }

  // ---- host <-> device -------------------------------------------------------------------------

  /** Copies what the device wrote of these tensors (no tensors: of every tensor) into the heap. */
  async download(...tensors: Tensor[]): Promise<void> {
    await this.mirror.download(
      tensors.length === 0 ? null : tensors.map((t) => [t.ptr, t.ptr + t.byteLength] as const),
    );
    this.throwErrors();
  }
  /**
   * The f32 values of t as the kernels recorded so far leave them (Kernels.readback): copied on
   * the device at this point of the recorded work, so t may be overwritten or freed at once.
   */
  async readback(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== "f32") throw new Error(`webgpu readback: ${t.toString()} is not f32`);
    const bytes = await this.mirror.snapshot(t.ptr, t.ptr + t.byteLength);
    this.throwErrors();
    return new Float32Array(bytes.buffer, bytes.byteOffset, t.size);
  }
  /** Copies everything the device wrote into the heap. */
  async sync(): Promise<void> {
    await this.mirror.download(null);
    this.throwErrors();
  }
  /**
   * Sends these tensors from the heap to the device (the host wrote them); with no tensors, every
   * tensor is sent again before a kernel next reads it (the host may have written any).
   */
  upload(...tensors: Tensor[]): void {
    if (tensors.length === 0) this.mirror.uploadAll();
    for (const t of tensors) this.mirror.upload(t.ptr, t.ptr + t.byteLength);
  }

  // ---- matrix products -------------------------------------------------------------------------

  matmul(out: Tensor, a: Tensor, b: Tensor, options: MatmulOptions = {}): void {
    const dims = check.checkMatmul(out, a, b, options);
    const transA = options.transA === true;
    let { batch, m } = dims;
    // a shared b with a plain a is one product over all batch rows (as the reference does)
    if (!dims.bBatched && !transA) {
      m *= batch;
      batch = 1;
    }
    const plus = options.plus;
    const flag = (on: boolean | undefined, bit: number): number => (on === true ? bit : 0);
    const flags =
      flag(transA, GEMM_FLAGS.transA) |
      flag(options.transB, GEMM_FLAGS.transB) |
      flag(options.accumulate, GEMM_FLAGS.accumulate) |
      flag(plus?.transA, GEMM_FLAGS.plusTransA) |
      flag(plus?.transB, GEMM_FLAGS.plusTransB);
    const tensors = [
      options.accumulate === true ? rw(out) : w(out),
      r(a),
      r(b),
      // without a fused term (k2 = 0) the term's bindings are never read: a and b stand in
      r(plus?.a ?? a),
      r(plus?.b ?? b),
    ];
    const { tx, ty } = this.gemmShape;
    if (batch > MAX_GROUPS) throw new Error(`webgpu matmul: batch ${batch} exceeds ${MAX_GROUPS}`);
    this.dispatcher.run(
      this.gemm,
      tensors,
      [
        m,
        dims.n,
        dims.k,
        dims.k2,
        dims.bBatched ? dims.k * dims.n : 0,
        options.causal?.period ?? 1,
        flags,
        GEMM_CAUSAL[options.causal?.kind ?? "none"],
        options.alpha ?? 1,
        plus?.alpha ?? 1,
      ],
      [Math.ceil(dims.n / (4 * tx)), Math.ceil(m / (4 * ty)), batch],
    );
  }

  // ---- elementwise -----------------------------------------------------------------------------

  add(out: Tensor, a: Tensor, b: Tensor): void {
    const n = check.checkElementwise("add", { out, a, b });
    this.map(ew.ADD, [w(out), r(a), r(b)], n, []);
  }
  mul(out: Tensor, a: Tensor, b: Tensor): void {
    const n = check.checkElementwise("mul", { out, a, b });
    this.map(ew.MUL, [w(out), r(a), r(b)], n, []);
  }
  scale(out: Tensor, a: Tensor, alpha: number): void {
    const n = check.checkElementwise("scale", { out, a });
    check.checkScalar("scale", "alpha", alpha);
    this.map(ew.SCALE, [w(out), r(a)], n, [alpha]);
  }
  axpy(out: Tensor, a: Tensor, alpha: number): void {
    const n = check.checkElementwise("axpy", { out, a });
    check.checkScalar("axpy", "alpha", alpha);
    this.map(ew.AXPY, [rw(out), r(a)], n, [alpha]);
  }
  addBias(out: Tensor, bias: Tensor): void {
    const { rows: count, cols } = check.checkBias("addBias", "out", out, "bias", bias);
    this.map(ew.ADD_BIAS, [rw(out), r(bias)], count * cols, [cols]);
  }
  biasBackward(dBias: Tensor, dOut: Tensor): void {
    const { rows: count, cols } = check.checkBias("biasBackward", "dOut", dOut, "dBias", dBias);
    this.columns(rows.columnSumSpec("bias", true), [r(dOut), rw(dBias)], count, cols);
  }

  // ---- activations -----------------------------------------------------------------------------

  silu(out: Tensor, inp: Tensor): void {
    const n = check.checkElementwise("silu", { out, inp });
    this.map(ew.SILU, [w(out), r(inp)], n, []);
  }
  siluBackward(dInp: Tensor, inp: Tensor, dOut: Tensor, options?: BackwardOptions): void {
    const n = check.checkElementwise("siluBackward", { dInp, inp, dOut });
    const acc = check.checkBackwardOptions("siluBackward", options);
    this.map(ew.siluBackwardSpec(acc), [grad(dInp, acc), r(inp), r(dOut)], n, []);
  }
  swiglu(out: Tensor, gate: Tensor, up: Tensor): void {
    const n = check.checkElementwise("swiglu", { out, gate, up });
    this.map(ew.SWIGLU, [w(out), r(gate), r(up)], n, []);
  }
  swigluBackward(
    dGate: Tensor,
    dUp: Tensor,
    gate: Tensor,
    up: Tensor,
    dOut: Tensor,
    options?: BackwardOptions,
  ): void {
    const n = check.checkElementwise("swigluBackward", { dGate, dUp, gate, up, dOut });
    const acc = check.checkBackwardOptions("swigluBackward", options);
    this.map(
      ew.swigluBackwardSpec(acc),
      [grad(dGate, acc), grad(dUp, acc), r(gate), r(up), r(dOut)],
      n,
      [],
    );
  }
  gelu(out: Tensor, inp: Tensor, approximate: GeluApproximate): void {
    const n = check.checkElementwise("gelu", { out, inp });
    this.map(ew.geluSpec(checkApproximate("gelu", approximate)), [w(out), r(inp)], n, []);
  }
  geluBackward(
    dInp: Tensor,
    inp: Tensor,
    dOut: Tensor,
    approximate: GeluApproximate,
    options?: BackwardOptions,
  ): void {
    const n = check.checkElementwise("geluBackward", { dInp, inp, dOut });
    const acc = check.checkBackwardOptions("geluBackward", options);
    const tanh = checkApproximate("geluBackward", approximate);
    this.map(ew.geluBackwardSpec(tanh, acc), [grad(dInp, acc), r(inp), r(dOut)], n, []);
  }
  relu(out: Tensor, inp: Tensor): void {
    const n = check.checkElementwise("relu", { out, inp });
    this.map(ew.RELU, [w(out), r(inp)], n, []);
  }
  reluBackward(dInp: Tensor, inp: Tensor, dOut: Tensor): void {
    const n = check.checkElementwise("reluBackward", { dInp, inp, dOut });
    this.map(ew.RELU_BACKWARD, [w(dInp), r(inp), r(dOut)], n, []);
  }

  // ---- normalisation ---------------------------------------------------------------------------

  rmsnorm(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void {
    const { rows: count, cols } = check.checkNorm("rmsnorm", inp, { out }, { weight }, { rstd });
    check.checkEps("rmsnorm", eps);
    this.rowRun(
      rows.rmsnormSpec(this.subgroups),
      [w(out), w(rstd), r(inp), r(weight)],
      count,
      cols,
      [eps],
    );
  }
  rmsnormBackward(
    dInp: Tensor,
    dWeight: Tensor | null,
    dOut: Tensor,
    inp: Tensor,
    weight: Tensor,
    rstd: Tensor,
    options?: BackwardOptions,
  ): void {
    const { rows: count, cols } = check.checkNorm(
      "rmsnormBackward",
      inp,
      { dInp, dOut },
      { weight, dWeight },
      { rstd },
    );
    const acc = check.checkBackwardOptions("rmsnormBackward", options);
    if (dWeight !== null) {
      // before dInp is written: dInp may alias dOut
      const spec = rows.columnSumSpec("rmsnorm", false);
      this.columns(spec, [r(dOut), rw(dWeight), r(inp), r(rstd)], count, cols);
    }
    this.rowRun(
      rows.rmsnormBackwardSpec(acc, this.subgroups),
      [grad(dInp, acc), r(dOut), r(inp), r(weight), r(rstd)],
      count,
      cols,
      [],
    );
  }
  layernorm(
    out: Tensor,
    mean: Tensor,
    rstd: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor,
    eps: number,
  ): void {
    const { rows: count, cols } = check.checkNorm(
      "layernorm",
      inp,
      { out },
      { weight, bias },
      { mean, rstd },
    );
    check.checkEps("layernorm", eps);
    this.rowRun(
      rows.layernormSpec(this.subgroups),
      [w(out), w(mean), w(rstd), r(inp), r(weight), r(bias)],
      count,
      cols,
      [eps],
    );
  }
  layernormBackward(
    dInp: Tensor,
    dWeight: Tensor | null,
    dBias: Tensor | null,
    dOut: Tensor,
    inp: Tensor,
    weight: Tensor,
    mean: Tensor,
    rstd: Tensor,
    options?: BackwardOptions,
  ): void {
    const { rows: count, cols } = check.checkNorm(
      "layernormBackward",
      inp,
      { dInp, dOut },
      { weight, dWeight, dBias },
      { mean, rstd },
    );
    const acc = check.checkBackwardOptions("layernormBackward", options);
    if (dWeight !== null) {
      const tensors = [r(dOut), rw(dWeight), r(inp), r(mean), r(rstd)];
      if (dBias !== null) tensors.push(rw(dBias));
      this.columns(rows.columnSumSpec("layernorm", dBias !== null), tensors, count, cols);
    } else if (dBias !== null) {
      this.columns(rows.columnSumSpec("bias", true), [r(dOut), rw(dBias)], count, cols);
    }
    this.rowRun(
      rows.layernormBackwardSpec(acc, this.subgroups),
      [grad(dInp, acc), r(dOut), r(inp), r(weight), r(mean), r(rstd)],
      count,
      cols,
      [],
    );
  }

  // ---- attention pieces ------------------------------------------------------------------------

  attentionSoftmax(probs: Tensor, scores: Tensor, options: AttentionSoftmaxOptions): void {
    const dims = check.checkAttentionSoftmax(probs, scores, options.scale, options.keyLengths);
    const keyLengths = options.keyLengths;
    const tensors = [w(probs), r(scores)];
    if (keyLengths !== undefined) tensors.push(r(keyLengths));
    const count = dims.batch * dims.heads * dims.tq;
    this.rowRun(
      rows.attentionSoftmaxSpec(options.causal, keyLengths !== undefined, this.subgroups),
      tensors,
      count,
      dims.tk,
      [dims.heads, dims.tq, options.scale],
    );
  }
  attentionSoftmaxBackward(
    dScores: Tensor,
    probs: Tensor,
    dProbs: Tensor,
    scale: number,
    options?: BackwardOptions,
  ): void {
    const dims = check.checkAttentionSoftmaxBackward(dScores, probs, dProbs, scale);
    const acc = check.checkBackwardOptions("attentionSoftmaxBackward", options);
    this.rowRun(
      rows.attentionSoftmaxBackwardSpec(acc, this.subgroups),
      [grad(dScores, acc), r(probs), r(dProbs)],
      dims.rows,
      dims.cols,
      [scale],
    );
  }
  rope(out: Tensor, inp: Tensor, cos: Tensor, sin: Tensor): void {
    const dims = check.checkRope("rope", "out", out, "inp", inp, cos, sin);
    this.ropeRun(layout.ropeSpec(false, false), w(out), inp, cos, sin, dims);
  }
  ropeBackward(
    dInp: Tensor,
    dOut: Tensor,
    cos: Tensor,
    sin: Tensor,
    options?: BackwardOptions,
  ): void {
    const dims = check.checkRope("ropeBackward", "dInp", dInp, "dOut", dOut, cos, sin);
    const acc = check.checkBackwardOptions("ropeBackward", options);
    this.ropeRun(layout.ropeSpec(true, acc), grad(dInp, acc), dOut, cos, sin, dims);
  }
  permute0213(out: Tensor, inp: Tensor): void {
    const d = check.checkPermute0213(out, inp);
    const n = out.size;
    this.dispatcher.run(layout.PERMUTE0213, [w(out), r(inp)], [n, d.b, d.c, d.d], strideGroups(n));
  }

  copyColumns(out: Tensor, outCol: number, inp: Tensor, inpCol: number, width: number): void {
    const d = check.checkCopyColumns(out, outCol, inp, inpCol, width);
    const n = d.rows * width;
    // the other columns of out are kept: it is read as well as written
    this.dispatcher.run(
      layout.COPY_COLUMNS,
      [rw(out), r(inp)],
      [n, width, d.outCols, outCol, d.inpCols, inpCol],
      strideGroups(n),
    );
  }
  maskOutsideWindow(scores: Tensor, window: number): void {
    const d = check.checkMaskOutsideWindow(scores, window);
    const n = scores.size;
    this.dispatcher.run(
      layout.MASK_OUTSIDE_WINDOW,
      [rw(scores)],
      [n, d.tq, d.tk, window],
      strideGroups(n),
    );
  }

  // ---- embeddings and loss ---------------------------------------------------------------------

  embedding(out: Tensor, table: Tensor, ids: Tensor): void {
    const { vocab, cols } = check.checkEmbedding("embedding", "out", out, "table", table, ids);
    checkIds("embedding", this.hostInts("embedding", "ids", ids), vocab);
    const n = out.size;
    this.dispatcher.run(layout.EMBEDDING, [w(out), r(table), r(ids)], [n, cols], strideGroups(n));
  }
  embeddingBackward(dTable: Tensor, dOut: Tensor, ids: Tensor): void {
    const { vocab, cols } = check.checkEmbedding(
      "embeddingBackward",
      "dOut",
      dOut,
      "dTable",
      dTable,
      ids,
    );
    checkIds("embeddingBackward", this.hostInts("embeddingBackward", "ids", ids), vocab);
    this.dispatcher.run(
      layout.EMBEDDING_BACKWARD,
      [rw(dTable), r(dOut), r(ids)],
      [ids.size, cols],
      [Math.ceil(cols / ew.WG), 1, 1],
    );
  }
  crossEntropy(
    losses: Tensor,
    dLogits: Tensor | null,
    logits: Tensor,
    targets: Tensor,
    options: CrossEntropyOptions = {},
  ): number {
    const ignoreIndex = options.ignoreIndex ?? -100;
    const gradScale = options.gradScale ?? 1;
    const { rows: count, vocab } = check.checkCrossEntropy(
      losses,
      dLogits,
      logits,
      targets,
      ignoreIndex,
      gradScale,
    );
    const ts = this.hostInts("crossEntropy", "targets", targets);
    let counted = 0;
    for (let n = 0; n < ts.length; n++) {
      const t = ts[n];
      if (t === ignoreIndex) continue;
      if (t < 0 || t >= vocab) {
        throw new RangeError(
          `crossEntropy: targets[${n}] = ${t} is outside [0, ${vocab}) and is not the ignore index ${ignoreIndex}`,
        );
      }
      counted++;
    }
    const tensors = [w(losses), r(logits), r(targets)];
    if (dLogits !== null) tensors.push(w(dLogits));
    this.rowRun(rows.crossEntropySpec(dLogits !== null, this.subgroups), tensors, count, vocab, [
      ignoreIndex,
      gradScale,
    ]);
    return counted;
  }

  // ---- reductions ------------------------------------------------------------------------------

  sum(_a: Tensor): number {
    return syncReduction("sum");
  }
  max(_a: Tensor): number {
    return syncReduction("max");
  }
  sumSquares(_a: Tensor): number {
    return syncReduction("sumSquares");
  }
  /** out (1) = sum of a, on the device. */
  sumInto(out: Tensor, a: Tensor): void {
    this.reduceInto("sum", out, a);
  }
  /** out (1) = largest element of a, on the device (the most negative f32 for an empty a). */
  maxInto(out: Tensor, a: Tensor): void {
    this.reduceInto("max", out, a);
  }
  /** out (1) = sum of squares of a, on the device. */
  sumSquaresInto(out: Tensor, a: Tensor): void {
    this.reduceInto("sumSquares", out, a);
  }

  // ---- optimiser and storage -------------------------------------------------------------------

  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, options: AdamWOptions): void {
    const n = check.checkAdamW(param, grad, m, v, options);
    const { lr, beta1, beta2, eps, weightDecay, step } = options;
    this.map(ew.ADAMW, [rw(param), r(grad), rw(m), rw(v)], n, [
      1 - lr * weightDecay,
      beta1,
      beta2,
      eps,
      lr / (1 - beta1 ** step),
      Math.sqrt(1 - beta2 ** step),
    ]);
  }
  sgd(param: Tensor, grad: Tensor, momentumBuf: Tensor | null, options: SGDOptions): void {
    const n = check.checkSGD(param, grad, momentumBuf, options);
    const { lr, momentum, dampening, nesterov, weightDecay, first } = options;
    const tensors = [rw(param), r(grad)];
    if (momentumBuf !== null) tensors.push(first ? w(momentumBuf) : rw(momentumBuf));
    this.map(ew.sgdSpec(momentumBuf !== null, nesterov), tensors, n, [
      lr,
      weightDecay,
      momentum,
      1 - dampening,
      first ? 1 : 0,
    ]);
  }
  /** out = q expanded (Kernels.dequantize); the codes cross to the device once, as any tensor. */
  dequantize(out: Tensor, q: QuantCodes): void {
    const n = check.checkDequantize(out, q);
    this.dispatcher.run(
      dequantizeSpec(q.kind),
      [w(out), r(q.codes), r(q.scales)],
      [n, q.blocksize],
      strideGroups(n),
    );
  }
  convert(out: Tensor, inp: Tensor): void {
    const n = check.checkConvert(out, inp);
    const from = inp.dtype as layout.FloatStorage;
    const to = out.dtype as layout.FloatStorage;
    if (from === to) {
      this.copy(out, inp);
      return;
    }
    // a 16-bit output of odd length keeps the other half of its last word: read it first
    const outAccess = to !== "f32" && n % 2 === 1 ? rw(out) : w(out);
    this.dispatcher.run(
      layout.convertSpec(from, to),
      [outAccess, r(inp)],
      [Math.ceil(n / 2), n],
      strideGroups(Math.ceil(n / 2)),
    );
  }
  copy(out: Tensor, inp: Tensor): void {
    check.checkCopy(out, inp);
    const bytes = out.byteLength;
    const words = Math.ceil(bytes / 4);
    const tail = bytes % 4;
    const lastMask = tail === 0 ? 0xffffffff : 2 ** (8 * tail) - 1;
    this.dispatcher.run(
      ew.COPY_WORDS,
      [tail === 0 ? w(out) : rw(out), r(inp)],
      [words, lastMask],
      strideGroups(words),
    );
  }

  fill(out: Tensor, value: number): void {
    check.checkFill(out, value);
    const bytes = out.byteLength;
    const words = Math.ceil(bytes / 4);
    const tail = bytes % 4;
    const lastMask = tail === 0 ? 0xffffffff : 2 ** (8 * tail) - 1;
    // the value's bit pattern as its dtype stores it (a 16-bit tensor is only ever zero-filled)
    const bits = new Uint32Array(1);
    if (out.dtype === "f32") new Float32Array(bits.buffer)[0] = value;
    else if (out.dtype === "i32") new Int32Array(bits.buffer)[0] = value;
    this.dispatcher.run(
      ew.FILL_WORDS,
      [tail === 0 ? w(out) : rw(out)],
      [words, bits[0], lastMask],
      strideGroups(words),
    );
  }

  async dispose(): Promise<void> {
    this.mirror.destroy();
    this.gpu.device.destroy();
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private map(spec: ShaderSpec, tensors: BoundTensor[], n: number, params: number[]): void {
    this.dispatcher.run(spec, tensors, [n, ...params], strideGroups(n));
  }
  private rowRun(
    spec: ShaderSpec,
    tensors: BoundTensor[],
    count: number,
    cols: number,
    params: number[],
  ): void {
    this.dispatcher.run(spec, tensors, [count, cols, ...params], rowGroups(count));
  }
  private columns(spec: ShaderSpec, tensors: BoundTensor[], count: number, cols: number): void {
    this.dispatcher.run(spec, tensors, [count, cols], [Math.ceil(cols / ew.WG), 1, 1]);
  }
  private ropeRun(
    spec: ShaderSpec,
    out: BoundTensor,
    inp: Tensor,
    cos: Tensor,
    sin: Tensor,
    dims: { batch: number; time: number; heads: number; headDim: number },
  ): void {
    const half = dims.headDim >> 1;
    const n = dims.batch * dims.time * dims.heads * half;
    this.dispatcher.run(
      spec,
      [out, r(inp), r(cos), r(sin)],
      [n, dims.time, dims.heads, half],
      strideGroups(n),
    );
  }
  private reduceInto(kind: "sum" | "max" | "sumSquares", out: Tensor, a: Tensor): void {
    check.checkReduceInto(`${kind}Into`, out, a);
    this.dispatcher.run(
      rows.reduceAllSpec(kind, this.subgroups),
      [w(out), r(a)],
      [a.size],
      [1, 1, 1],
    );
  }
  /** An i32 tensor's values from the heap, which must be current (batch data the host wrote). */
  private hostInts(op: string, name: string, t: Tensor): Int32Array {
    if (this.mirror.isDeviceNewer(t.ptr, t.ptr + t.byteLength)) {
      throw new Error(
        `webgpu ${op}: ${name} were written on the device; download them before this call`,
      );
    }
    return t.i32();
  }
  private throwErrors(): void {
    if (this.errors.length === 0) return;
    const messages = this.errors.splice(0);
    throw new Error(`webgpu: the device reported: ${messages.join("; ")}`);
  }
}

function checkApproximate(op: string, approximate: GeluApproximate): boolean {
  if (approximate !== "none" && approximate !== "tanh") {
    throw new Error(`${op}: approximate must be "none" or "tanh", got ${String(approximate)}`);
  }
  return approximate === "tanh";
}

function syncReduction(op: string): never {
  throw new Error(
    `webgpu ${op}: a number cannot be returned synchronously from the GPU; use ${op}Into(out, a) ` +
      "and await download(out) (docs/engine-notes.md, The WebGPU engine)",
  );
}

export async function createWebGpuKernels(
  heap: Heap,
  options: WebGpuOptions = {},
): Promise<WebGpuKernels> {
  return new WebGpuKernels(await openGpu(), heap, options);
}
