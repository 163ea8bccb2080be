// The Kernels interface: every compute operation the engine offers, in one place. This is the
// contract between models/optimisers (which call it) and the implementations (which provide it):
//   - `ref`  (kernels/ref/): plain TypeScript, obviously correct; the oracle every other
//            implementation is tested against.
//   - `wasm` (kernels/wasm/): WebAssembly SIMD128 code generated from TypeScript, multi-threaded
//            over worker threads sharing the heap.
//   - `native` (kernels/native/): a C addon's matmul (native/src/) on the same heap, every other
//            op the wasm one's; Node only, when the addon is built. `auto` is native when it
//            loads, else wasm.
//   - `webgpu` (kernels/webgpu/): WGSL compute shaders on a WebGPU device, on a device mirror of
//            the heap; results reach the heap at its download()/sync() points.
//
// Conventions (llm.c style):
// - Outputs first, then inputs, then options. All tensors live in the same Heap as the kernels.
// - Tensors are contiguous and row-major; shapes are checked by kernels/validate.ts and a mismatch
//   throws an Error naming the argument and the shapes involved.
// - Forward kernels OVERWRITE their outputs. Backward kernels ACCUMULATE into their gradient
//   outputs (dX += ...); zeroing a gradient buffer is an explicit kernels.fill(t, 0) by the
//   caller. The activation-gradient backwards take a trailing BackwardOptions: `{ accumulate:
//   false }` makes them overwrite those outputs instead (dX = ..., the old contents never read),
//   which saves the fill(0) and the read of the buffer; parameter gradients (dWeight, dBias)
//   always accumulate.
// - The host reads a tensor a kernel wrote only after `await kernels.download(t)`, and announces
//   its own writes to a tensor kernels read with `kernels.upload(t)`: both cost nothing on the CPU
//   engines, and are what lets the webgpu engine keep tensors on its device (`deferred`).
// - Compute is f32. 16-bit floats are storage only (see `convert`), except a bf16 frozen weight
//   as matmul's b on engines with `bf16Matmul`.
// - Dimension letters in comments: B batch, T time (sequence), H heads, D head dim, C channels,
//   V vocabulary, R rows (any flattened leading dims), M/N/K matmul dims.

import type { Heap } from "../tensor/heap.js";
import type { Tensor } from "../tensor/tensor.js";

/** Names createKernels accepts; "auto" picks "native" when its addon loads, else "wasm". */
export type KernelsName = "ref" | "wasm" | "native" | "webgpu" | "auto";
/** The implementation a Kernels object is (what "auto" resolved to). */
export type KernelsImpl = Exclude<KernelsName, "auto">;

export interface MatmulOptions {
  /** a is stored (..., K, M) and used transposed. */
  transA?: boolean;
  /** b is stored (..., N, K) and used transposed (the nn.Linear layout: y = x W^T). */
  transB?: boolean;
  /** out += alpha * op(a) op(b) instead of out = alpha * op(a) op(b). */
  accumulate?: boolean;
  /** Multiplies the product; default 1. */
  alpha?: number;
  /** Causal-attention structure the product may skip work on (see MatmulCausal). */
  causal?: MatmulCausal;
  /**
   * A second product added to the same output in the same pass (see MatmulTerm):
   * out = alpha op(a) op(b) + plus.alpha op(plus.a) op(plus.b)  (+ out when accumulate).
   * Only for one (non-batched) product: a 2-D b shared by a's leading dims, no transA, no causal.
   */
  plus?: MatmulTerm;
}

/**
 * One extra product of a matmul (MatmulOptions.plus), with its own inner dim K2 and transposes:
 * op(a) is (M, K2) where M is all the rows of the main product (a: (M, K2), or (K2, M) with transA;
 * 2-D), op(b) is (K2, N) (b: (K2, N), or (N, K2) with transB; 2-D). What it is for: a low-rank
 * adapter's delta fused into its base layer's product, e.g. LoRA's y = x W^T + s (x A^T) B^T and
 * dx = dy W + (s dy B) A, so the output is read and written once instead of twice (the wasm GEMM
 * runs the term as one more K block while each block of C is in cache).
 */
export interface MatmulTerm {
  a: Tensor;
  b: Tensor;
  transA?: boolean;
  transB?: boolean;
  /** Multiplies this term; default 1. */
  alpha?: number;
}

/**
 * The triangular structure of causal attention products, so that a kernel skips the half of the
 * work that masked positions make zero. Queries and keys repeat with `period` (the sequence length
 * T; grouped-query attention stacks g query heads as g*T rows):
 * - "maskOut": out[i, j] is needed only for j <= i mod period; the rest of out is set to 0.
 *   Needs N == period, M a multiple of period, no accumulate. (scores = Q K^T, dP = dO V^T)
 * - "lowerA": the caller guarantees op(a)[i, k] == 0 where k > i mod period. Needs K == period
 *   and M a multiple of period. (P V, dS K)
 * - "upperA": the caller guarantees op(a)[i, k] == 0 where k mod period < i. Needs M == period
 *   and K a multiple of period. (P^T dO, dS^T Q)
 * For lowerA / upperA a kernel may skip any of those zero terms (the wasm GEMM skips whole blocks
 * of them), so the result is the full product whenever the guarantee holds. Attention
 * probabilities and their gradients are zero above the diagonal, so it holds there.
 */
export interface MatmulCausal {
  kind: "maskOut" | "lowerA" | "upperA";
  period: number;
}

export type GeluApproximate = "none" | "tanh";

/**
 * The trailing option of the backward kernels whose gradient outputs are activation gradients
 * (siluBackward, swigluBackward, geluBackward, rmsnormBackward and layernormBackward (dInp only),
 * attentionSoftmaxBackward, ropeBackward).
 */
export interface BackwardOptions {
  /**
   * true (the default): dX += the gradient, as every backward kernel does. false: dX = the
   * gradient, exactly the value that would have been added; the old contents of dX are never
   * read (NaN or garbage there does not matter), so a caller need not zero it first. Parameter
   * gradients (dWeight, dBias of the norms) accumulate either way: they sum over calls.
   */
  accumulate?: boolean;
}

export interface AttentionSoftmaxOptions {
  /** Multiplies the raw scores before the softmax (1/sqrt(D) for attention). */
  scale: number;
  /**
   * Causal mask: query row i may see key column j only when j <= i + (Tk - Tq), so a block of
   * Tq new queries at the end of Tk keys (KV-cache decoding) sees its own past.
   */
  causal: boolean;
  /**
   * Optional i32 tensor (B): key columns j >= keyLengths[b] are masked (right padding). A row
   * with no visible key gets all-zero probabilities.
   */
  keyLengths?: Tensor;
}

export interface CrossEntropyOptions {
  /** Target value whose rows contribute nothing (PyTorch's ignore_index). Default -100. */
  ignoreIndex?: number;
  /** dLogits rows are (softmax - onehot) * gradScale; use 1/(number of counted rows) for a mean. */
  gradScale?: number;
}

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  step: number;
}

/** torch.optim.SGD's settings for one step (Kernels.sgd). */
export interface SGDOptions {
  lr: number;
  /** 0: no momentum buffer (pass null for it). */
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  /** The first step: the momentum buffer is set to the gradient (torch: it was None). */
  first: boolean;
}

/**
 * The codes of a quantized frozen weight in heap tensors (quant/int8.ts, quant/nf4.ts), for an
 * engine that expands them on its device (Kernels.dequantize). Weight element i (row-major) is
 * code(i) * scales[floor(i / blocksize)], one f32 multiply, where code(i) is
 * - int8: byte i of `codes` read as a signed integer; blocksize = the row length (one scale a row);
 * - nf4: NF4_CODE[nibble i] with nibble i in byte floor(i / 2), the even i in the high nibble.
 */
export interface QuantCodes {
  readonly kind: "int8" | "nf4";
  /** u8: int8 (n), nf4 (ceil(n / 2)). */
  readonly codes: Tensor;
  /** f32 (ceil(n / blocksize)). */
  readonly scales: Tensor;
  readonly blocksize: number;
}

export interface Kernels {
  readonly name: KernelsImpl;
  /** Threads that execute a kernel call (1 = the calling thread only). */
  readonly threads: number;
  readonly heap: Heap;
  /**
   * Present and true when matmul also takes a bf16 `b` (a frozen weight: 2-D, no causal option).
   * Its numerics are PyTorch's bf16 matmul on a CPU: op(a) (times alpha) rounded to bf16 (nearest
   * even), the products of two bf16 values summed in f32, out f32. The native engine on a CPU with
   * AVX512-BF16 has it; elsewhere a bf16 weight is expanded to f32 first (models/weights.ts).
   */
  readonly bf16Matmul?: boolean;

  // ---- matrix products ---------------------------------------------------------------------
  /**
   * out (..., M, N) = alpha * op(a) op(b)   (+ out when accumulate).
   * a: (..., M, K), or (..., K, M) with transA.  b: (..., K, N), or (..., N, K) with transB.
   * Leading (batch) dims of out and a must be equal; b has the same batch dims or is 2-D and
   * shared by every batch entry (a linear layer's weight).
   */
  matmul(out: Tensor, a: Tensor, b: Tensor, options?: MatmulOptions): void;

  // ---- elementwise (all tensors the same size; out may alias an input) -----------------------
  /** out = a + b */
  add(out: Tensor, a: Tensor, b: Tensor): void;
  /** out = a * b */
  mul(out: Tensor, a: Tensor, b: Tensor): void;
  /** out = alpha * a */
  scale(out: Tensor, a: Tensor, alpha: number): void;
  /** out += alpha * a */
  axpy(out: Tensor, a: Tensor, alpha: number): void;
  /** out (R, C) += bias (C) broadcast over rows. */
  addBias(out: Tensor, bias: Tensor): void;
  /** dBias (C) += sum over rows of dOut (R, C). */
  biasBackward(dBias: Tensor, dOut: Tensor): void;

  // ---- activations ---------------------------------------------------------------------------
  /** out = x * sigmoid(x) */
  silu(out: Tensor, inp: Tensor): void;
  /** dInp += dOut * silu'(inp)  (= with accumulate: false) */
  siluBackward(dInp: Tensor, inp: Tensor, dOut: Tensor, options?: BackwardOptions): void;
  /** out = silu(gate) * up   (the SwiGLU MLP of Llama) */
  swiglu(out: Tensor, gate: Tensor, up: Tensor): void;
  /** dGate += dOut * up * silu'(gate), dUp += dOut * silu(gate)  (= with accumulate: false) */
  swigluBackward(
    dGate: Tensor,
    dUp: Tensor,
    gate: Tensor,
    up: Tensor,
    dOut: Tensor,
    options?: BackwardOptions,
  ): void;
  /** GELU, exact (erf) or tanh approximation (GPT-2's gelu_new). */
  gelu(out: Tensor, inp: Tensor, approximate: GeluApproximate): void;
  /** dInp += dOut * gelu'(inp)  (= with accumulate: false) */
  geluBackward(
    dInp: Tensor,
    inp: Tensor,
    dOut: Tensor,
    approximate: GeluApproximate,
    options?: BackwardOptions,
  ): void;
  /**
   * out = max(inp, 0) (T5 v1.0's feed-forward). Only on engines whose tensors live on a device
   * (webgpu); the CPU engines leave it undefined and T5 applies ReLU on the host (t5-activation.ts).
   */
  relu?(out: Tensor, inp: Tensor): void;
  /** dInp = inp > 0 ? dOut : 0 (the derivative at 0 is 0, as PyTorch's); as relu, webgpu only. */
  reluBackward?(dInp: Tensor, inp: Tensor, dOut: Tensor): void;

  // ---- normalisation (inp (R, C), weight/bias (C), per-row statistics (R)) --------------------
  /** out = inp * rstd * weight, rstd = 1/sqrt(mean(inp^2) + eps)  (Llama RMSNorm) */
  rmsnorm(out: Tensor, rstd: Tensor, inp: Tensor, weight: Tensor, eps: number): void;
  /** dInp += (= with accumulate: false) the input gradient; dWeight (if given) += always. */
  rmsnormBackward(
    dInp: Tensor,
    dWeight: Tensor | null,
    dOut: Tensor,
    inp: Tensor,
    weight: Tensor,
    rstd: Tensor,
    options?: BackwardOptions,
  ): void;
  /** out = (inp - mean) * rstd * weight + bias, biased variance (torch.nn.LayerNorm) */
  layernorm(
    out: Tensor,
    mean: Tensor,
    rstd: Tensor,
    inp: Tensor,
    weight: Tensor,
    bias: Tensor,
    eps: number,
  ): void;
  /** dInp += (= with accumulate: false) the input gradient; dWeight, dBias += always. */
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
  ): void;

  // ---- attention pieces ----------------------------------------------------------------------
  /** probs (B, H, Tq, Tk) = softmax(scale * scores + mask) over the last axis. */
  attentionSoftmax(probs: Tensor, scores: Tensor, options: AttentionSoftmaxOptions): void;
  /** dScores += scale * probs * (dProbs - rowsum(probs * dProbs))  (= with accumulate: false) */
  attentionSoftmaxBackward(
    dScores: Tensor,
    probs: Tensor,
    dProbs: Tensor,
    scale: number,
    options?: BackwardOptions,
  ): void;
  /**
   * Rotary embedding on x (B, T, H, D), rotate-half convention (Hugging Face Llama):
   * out[..i]    = x[i] cos[t,i] - x[i+D/2] sin[t,i]
   * out[i+D/2]  = x[i+D/2] cos[t,i] + x[i] sin[t,i]        for i < D/2; cos, sin: (T, D/2).
   */
  rope(out: Tensor, inp: Tensor, cos: Tensor, sin: Tensor): void;
  /** dInp += R(-theta) dOut  (= with accumulate: false) */
  ropeBackward(
    dInp: Tensor,
    dOut: Tensor,
    cos: Tensor,
    sin: Tensor,
    options?: BackwardOptions,
  ): void;
  /** out (A, C, B, D) = inp (A, B, C, D) with axes 1 and 2 swapped. */
  permute0213(out: Tensor, inp: Tensor): void;
  /**
   * out (R, Co)[:, outCol + j] = inp (R, Ci)[:, inpCol + j] for j < width; out's other columns
   * are kept (the parts of a fused projection, the rotated part of partial RoPE).
   */
  copyColumns(out: Tensor, outCol: number, inp: Tensor, inpCol: number, width: number): void;
  /**
   * Sliding-window attention on raw scores (M, Tq, Tk), before attentionSoftmax: query i (at
   * position i + Tk - Tq) keeps keys j > position - window; the others are set to -1e30.
   */
  maskOutsideWindow(scores: Tensor, window: number): void;

  // ---- embeddings and loss -------------------------------------------------------------------
  /** out (N, C) = table (V, C) rows at ids (N, i32). Out-of-range ids throw. */
  embedding(out: Tensor, table: Tensor, ids: Tensor): void;
  /** dTable rows at ids += dOut rows (scatter-add; repeated ids add up). */
  embeddingBackward(dTable: Tensor, dOut: Tensor, ids: Tensor): void;
  /**
   * Fused, numerically stable softmax cross-entropy over logits (N, V) with targets (N, i32).
   * Writes losses (N) (0 on ignored rows) and, if dLogits is given, overwrites
   * dLogits = (softmax(logits) - onehot(target)) * gradScale (0 rows where ignored). dLogits may
   * be logits itself (the same tensor): the gradient then replaces the logits in place, which
   * saves a second (N, V) buffer and its memory traffic in training.
   * Returns the number of rows not ignored. Targets outside [0, V) other than ignoreIndex throw.
   */
  crossEntropy(
    losses: Tensor,
    dLogits: Tensor | null,
    logits: Tensor,
    targets: Tensor,
    options?: CrossEntropyOptions,
  ): number;

  // ---- reductions (accumulated in float64) ---------------------------------------------------
  /** These three return a number, so they throw on a deferred engine (webgpu): use the *Into forms. */
  sum(a: Tensor): number;
  /** Largest value (NaN if any element is NaN; -Infinity for an empty tensor). */
  max(a: Tensor): number;
  /** Sum of squares: the squared L2 norm. */
  sumSquares(a: Tensor): number;
  /** out (one f32) = sum of a, for the host to download (rounded to f32). */
  sumInto(out: Tensor, a: Tensor): void;
  /** out (one f32) = sum of squares of a, for the host to download (rounded to f32). */
  sumSquaresInto(out: Tensor, a: Tensor): void;

  // ---- optimiser and storage -----------------------------------------------------------------
  /**
   * One AdamW step in place, PyTorch's torch.optim.AdamW semantics (decoupled weight decay:
   * p -= lr*wd*p; m,v moments; bias-corrected; p -= lr * mhat / (sqrt(vhat) + eps)).
   */
  adamw(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, options: AdamWOptions): void;
  /**
   * One SGD step in place, torch.optim.SGD semantics and order of operations (the update is
   * spelled out in ref/sgd.ts); every stored value is f32. momentumBuf (same size as param) is
   * null exactly when options.momentum is 0.
   */
  sgd(param: Tensor, grad: Tensor, momentumBuf: Tensor | null, options: SGDOptions): void;
  /** out = inp converted between f32, f16 and bf16 (round to nearest even); same size. */
  convert(out: Tensor, inp: Tensor): void;
  /**
   * out (n, f32) = the quantized weight `q` expanded (QuantCodes gives the formula), exactly as
   * the host's quant/ code expands it. Only on engines whose tensors live on a device (webgpu),
   * which keep int8 / nf4 codes on the heap to expand them there; the CPU engines expand on the
   * host (models/weights.ts) and leave this undefined.
   */
  dequantize?(out: Tensor, q: QuantCodes): void;
  /** out = inp (same dtype and size). */
  copy(out: Tensor, inp: Tensor): void;
  /** out = value everywhere (f32 or i32; 0 for any dtype): zeroing a gradient buffer, a mask. */
  fill(out: Tensor, value: number): void;

  // ---- host <-> engine (docs/engine-notes.md, "Tensors, the heap and the engines") ----------
  /**
   * false (ref, wasm, native): a call has written the heap when it returns, and the host may read
   * or write any tensor between calls. true (webgpu): tensors live on a device; results reach the
   * heap only when `download` resolves, and the host announces its own writes with `upload`.
   */
  readonly deferred: boolean;
  /**
   * The host wrote these tensors (token ids, a dropout mask, restored weights): the kernels must
   * see the new contents. No tensors: the host may have written any tensor (call it where a phase
   * begins, e.g. after an adapter init rewrote base weights). A no-op where deferred is false.
   */
  upload(...tensors: Tensor[]): void;
  /**
   * Resolves when the heap holds what the kernels wrote into these tensors (no tensors: every
   * tensor). Resolved at once where deferred is false.
   */
  download(...tensors: Tensor[]): Promise<void>;
  /**
   * Deferred engines only: resolves with the values of f32 tensor t as the kernels called so far
   * leave them, taken at this point of the work, so the caller may overwrite or free t at once
   * (download instead writes into the heap, after all the work called before it resolves).
   */
  readback?(t: Tensor): Promise<Float32Array>;

  /** Releases threads and other resources. The heap is not freed (it belongs to the caller). */
  dispose(): Promise<void>;
}
