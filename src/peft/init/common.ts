// Shared pieces of the adapter initialisations: the input every init receives, its result, and the
// matrix helpers they use (layout transposes, dtype rounding, the base offset s*B*A, SVD choice).
//
// Contract: every init is a pure function of (InitContext) on Float32Arrays; nothing here touches
// a model. Shapes: A (r, in), B (out, r) as PEFT stores lora_A.weight / lora_B.weight; a weight or
// gradient arrives in the model's STORED layout ((out, in), or (in, out) when fanInFanOut, i.e.
// GPT-2 Conv1D) and the inits transpose it as PEFT's `transpose(w, fan_in_fan_out)` does.
// baseOffset is always (out, in), float32, to be SUBTRACTED from the base weight
// (see subtractBaseOffset for the stored layout).

import type { Kernels } from "../../kernels/kernels.js";
import { type Svd, svdJacobi } from "../../linalg/svd-jacobi.js";
import { svdLowrank } from "../../linalg/svd-lowrank.js";
import { bf16ToF32, f32ToBf16 } from "../../tensor/dtype.js";
import type { Rng } from "../../util/random.js";

export interface InitResult {
  /** (r, in) lora_A.weight. */
  A: Float32Array;
  /** (out, r) lora_B.weight. */
  B: Float32Array;
  /** (out, in) to subtract from the base weight so that W' + s B A == W; null = leave W as is. */
  baseOffset: Float32Array | null;
}

export interface InitContext {
  /** Module path, for error messages. */
  path: string;
  inFeatures: number;
  outFeatures: number;
  /** The weight / gradient are stored (in, out) (GPT-2 Conv1D). */
  fanInFanOut: boolean;
  r: number;
  /** The LoRA scaling s (alpha / r or alpha / sqrt r). */
  scaling: number;
  /** Base weight in stored layout; needed by pissa, olora, LoRA-GA weightS. */
  weight?: Float32Array | null;
  /** Loss gradient of the base weight in stored layout; needed by lora_ga and lora_one. */
  grad?: Float32Array | null;
  /** Randomness (default/gaussian A, LoRA-GA "random", randomized SVD seeds). */
  rng: Rng;
  /** Runs the big SVD products on this engine when given. */
  kernels?: Kernels;
  /** Storage dtype of A and B; the offset comes from the rounded values (docs/lora-ga-spec.md §6.4). */
  adapterDtype?: "f32" | "bf16";
}

export function describe(ctx: Pick<InitContext, "path" | "inFeatures" | "outFeatures">): string {
  return `module ${ctx.path} (in ${ctx.inFeatures}, out ${ctx.outFeatures})`;
}

/** The (out, in) view of a stored matrix: a copy transposed when fanInFanOut. */
function toOutIn(stored: Float32Array, ctx: InitContext, what: string): Float32Array {
  const { inFeatures: n, outFeatures: m } = ctx;
  if (stored.length !== m * n) {
    throw new Error(`${describe(ctx)}: ${what} has ${stored.length} values, expected ${m * n}`);
  }
  if (!ctx.fanInFanOut) return stored;
  const t = new Float32Array(m * n); // (out, in) from (in, out)
  for (let i = 0; i < n; i++) for (let o = 0; o < m; o++) t[o * n + i] = stored[i * m + o];
  return t;
}

/** Throws naming the module when `buf` holds NaN or +-Inf. */
function assertFinite(buf: Float32Array, ctx: InitContext, what: string): void {
  for (let i = 0; i < buf.length; i++) {
    if (!Number.isFinite(buf[i])) {
      throw new Error(`${describe(ctx)}: ${what} contains ${buf[i]} at flat index ${i}`);
    }
  }
}

export function requireWeight(ctx: InitContext, method: string): Float32Array {
  if (ctx.weight === undefined || ctx.weight === null)
    throw new Error(`${describe(ctx)}: ${method} needs the base weight`);
  const w = toOutIn(ctx.weight, ctx, "weight");
  assertFinite(w, ctx, "weight");
  return w;
}

export function requireGrad(ctx: InitContext, method: string): Float32Array {
  if (ctx.grad === undefined || ctx.grad === null) {
    throw new Error(
      `${describe(ctx)}: ${method} needs the weight gradient, and none was given for this module`,
    );
  }
  const g = toOutIn(ctx.grad, ctx, "gradient");
  assertFinite(g, ctx, "gradient");
  return g;
}

/** Rounds A and B in place to the adapter's storage dtype (no-op for f32). */
export function roundToAdapterDtype(ctx: InitContext, ...bufs: Float32Array[]): void {
  if ((ctx.adapterDtype ?? "f32") !== "bf16") return;
  for (const b of bufs) for (let i = 0; i < b.length; i++) b[i] = bf16ToF32(f32ToBf16(b[i]));
}

/**
 * offset (out, in) = s * B (out, r) A (r, in) from the given (stored) values: on the engine's f32
 * matmul when `kernels` is given (as PEFT's torch matmul; every caller that must reproduce an
 * offset passes the same kernels: init and resume both use the model's), else accumulated in
 * float64 TypeScript (slower on model-sized layers: docs/engine-notes.md).
 */
export function scaledProduct(
  B: Float32Array,
  A: Float32Array,
  m: number,
  r: number,
  n: number,
  s: number,
  kernels?: Kernels,
): Float32Array {
  if (kernels !== undefined) {
    const heap = kernels.heap;
    const b = heap.fromArray(B, [m, r]);
    const a = heap.fromArray(A, [r, n]);
    const out = heap.tensor([m, n]);
    try {
      kernels.matmul(out, b, a, { alpha: s });
      return out.toArray();
    } finally {
      for (const t of [b, a, out]) t.dispose();
    }
  }
  const out = new Float32Array(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[i * r + k];
      if (b === 0) continue;
      const aOff = k * n;
      for (let j = 0; j < n; j++) row[j] += b * A[aOff + j];
    }
    for (let j = 0; j < n; j++) out[i * n + j] = s * row[j];
  }
  return out;
}

/** weight (stored layout) -= offset (out, in), in place. */
export function subtractBaseOffset(
  weight: Float32Array,
  offset: Float32Array,
  info: { inFeatures: number; outFeatures: number; fanInFanOut: boolean },
): void {
  const { inFeatures: n, outFeatures: m } = info;
  if (weight.length !== m * n || offset.length !== m * n) {
    throw new Error(
      `subtractBaseOffset: weight ${weight.length} / offset ${offset.length} values, expected ${m * n}`,
    );
  }
  if (!info.fanInFanOut) {
    for (let i = 0; i < weight.length; i++) weight[i] -= offset[i];
    return;
  }
  for (let o = 0; o < m; o++) for (let i = 0; i < n; i++) weight[i * m + o] -= offset[o * n + i];
}

export interface SvdChoice {
  /** "lowrank": torch.svd_lowrank's randomized algorithm (as PEFT); "exact": one-sided Jacobi. */
  method?: "lowrank" | "exact";
  /** Subspace iterations of the randomized SVD (PEFT's LoRA-GA uses 4). */
  niter?: number;
}

/** Top-q SVD of the (m, n) matrix a, either randomized (seeded from ctx.rng) or exact. */
export function topSvd(
  a: Float32Array,
  m: number,
  n: number,
  q: number,
  ctx: InitContext,
  choice: SvdChoice,
): Svd {
  if ((choice.method ?? "lowrank") === "exact") return svdJacobi(a, m, n);
  return svdLowrank(a, m, n, {
    q,
    niter: choice.niter ?? 4,
    seed: ctx.rng.nextU32(),
    ...(ctx.kernels !== undefined && { kernels: ctx.kernels }),
  });
}
