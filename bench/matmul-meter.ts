// Wraps kernels.matmul to count its FLOPs (2 x the multiply-adds needed: causal products count
// only their unmasked half; batch included) and wall time, so a
// suite can report the GEMM share of a step and the GEMM-only lower bound on the step time at the
// machine's measured wasm FMA peak (bench/wasm-peak.ts).

import type { Kernels, MatmulOptions } from "../src/kernels/kernels.js";
import type { Tensor } from "../src/tensor/tensor.js";

export interface MatmulMeter {
  /** FLOPs and milliseconds since the last reset. */
  flops(): number;
  ms(): number;
  reset(): void;
  /** Puts the original matmul back. */
  restore(): void;
}

/**
 * 2 x the multiply-adds a product needs: all of them, or for a causal product (kernels.ts
 * MatmulCausal) only the unmasked ones: every kind keeps, per period P, P (P + 1) / 2 of the P^2
 * (row, column) or (row, k) pairs, so a fraction (P + 1) / (2P).
 */
function essentialFlops(macs: number, options: MatmulOptions | undefined): number {
  const P = options?.causal?.period;
  return P === undefined ? 2 * macs : (2 * macs * (P + 1)) / (2 * P);
}

export function meterMatmul(kernels: Kernels): MatmulMeter {
  const original = kernels.matmul;
  let flops = 0;
  let ms = 0;
  const metered: Kernels["matmul"] = (
    out: Tensor,
    a: Tensor,
    b: Tensor,
    options?: MatmulOptions,
  ) => {
    const t0 = performance.now();
    original.call(kernels, out, a, b, options);
    ms += performance.now() - t0;
    // out (..., M, N); op(a) (..., M, K)
    const K = options?.transA === true ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
    flops += essentialFlops(out.size * K, options);
  };
  (kernels as { matmul: Kernels["matmul"] }).matmul = metered;
  return {
    flops: () => flops,
    ms: () => ms,
    reset: () => {
      flops = 0;
      ms = 0;
    },
    restore: () => {
      (kernels as { matmul: Kernels["matmul"] }).matmul = original;
    },
  };
}
