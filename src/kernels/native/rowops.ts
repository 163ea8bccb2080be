// The native engine's small non-GEMM kernels (native/src/rowops.c, through the addon's rowop):
// add, permute0213, and swiglu, attentionSoftmax, rmsnorm and rope with their backwards, on the
// calling thread, for tensors of at most ROWOP_MAX_ELEMS elements. There, waking a pool's workers
// costs more than the op (the demo model's activations: 672 x 512 at most), and running on the
// caller keeps the wasm workers parked while the native GEMM uses the cores. Larger tensors, and
// aliasing the C loops do not reproduce (a partial overlap), go to the wasm kernels as before.
// Each call first validates its arguments as the other engines do (validate.ts). The params
// layout is addon.c's ROWOP_* enum (keep both in step).

import type { Heap } from "../../tensor/heap.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { Kernels } from "../kernels.js";
import {
  checkAttentionSoftmax,
  checkAttentionSoftmaxBackward,
  checkBackwardOptions,
  checkElementwise,
  checkEps,
  checkNorm,
  checkPermute0213,
  checkRope,
} from "../validate.js";
import { canRunInPlace, disjoint, outputsDisjoint } from "../wasm/overlap.js";
import type { NativeAddon, NativeEngine } from "./addon.js";

/** Tensors of at most this many elements run on the calling thread. */
export const ROWOP_MAX_ELEMS = 1 << 19;

const OP = {
  add: 1,
  swiglu: 2,
  swigluBackward: 3,
  softmax: 4,
  softmaxBackward: 5,
  rmsnorm: 6,
  permute0213: 7,
  rope: 8,
  ropeBackward: 9,
  rmsnormBackward: 10,
} as const;
const ROWOP_PARAMS = 10;

type RowOps = Pick<
  Kernels,
  | "add"
  | "swiglu"
  | "swigluBackward"
  | "attentionSoftmax"
  | "attentionSoftmaxBackward"
  | "rmsnorm"
  | "rmsnormBackward"
  | "rope"
  | "ropeBackward"
  | "permute0213"
>;

/** The row ops over `addon`'s engine on `heap`; `fallback` (the wasm kernels) takes the rest. */
export function createRowOps(
  addon: NativeAddon,
  engine: NativeEngine,
  heap: Heap,
  fallback: Kernels,
): RowOps {
  const params = new Float64Array(ROWOP_PARAMS);
  const at = (t: Tensor) => t.ptr / 4; // element offset of an f32 or i32 tensor
  function run(op: number, ...fields: number[]): void {
    params.fill(0);
    params[0] = op;
    params.set(fields, 1);
    addon.rowop(engine, params, heap.byteLength);
  }
  const small = (n: number) => n <= ROWOP_MAX_ELEMS;

  return {
    add(out, a, b) {
      const n = checkElementwise("add", { out, a, b });
      if (small(n) && canRunInPlace([out], [a, b])) run(OP.add, at(out), at(a), at(b), n);
      else fallback.add(out, a, b);
    },
    swiglu(out, gate, up) {
      const n = checkElementwise("swiglu", { out, gate, up });
      if (small(n) && canRunInPlace([out], [gate, up]))
        run(OP.swiglu, at(out), at(gate), at(up), n);
      else fallback.swiglu(out, gate, up);
    },
    swigluBackward(dGate, dUp, gate, up, dOut, options) {
      const n = checkElementwise("swigluBackward", { dGate, dUp, gate, up, dOut });
      const accumulate = checkBackwardOptions("swigluBackward", options);
      if (small(n) && outputsDisjoint([dGate, dUp], [gate, up, dOut]))
        run(OP.swigluBackward, at(dGate), at(dUp), at(gate), at(up), at(dOut), n, +accumulate);
      else fallback.swigluBackward(dGate, dUp, gate, up, dOut, options);
    },
    attentionSoftmax(probs, scores, options) {
      const { batch, heads, tq, tk } = checkAttentionSoftmax(
        probs,
        scores,
        options.scale,
        options.keyLengths,
      );
      const kl = options.keyLengths;
      if (small(batch * heads * tq * tk) && canRunInPlace([probs], [scores])) {
        const causal = options.causal === true ? 1 : 0;
        const keyLengths = kl === undefined ? -1 : at(kl);
        run(
          OP.softmax,
          at(probs),
          at(scores),
          batch,
          heads,
          tq,
          tk,
          options.scale,
          causal,
          keyLengths,
        );
      } else fallback.attentionSoftmax(probs, scores, options);
    },
    attentionSoftmaxBackward(dScores, probs, dProbs, scale, options) {
      const { rows, cols } = checkAttentionSoftmaxBackward(dScores, probs, dProbs, scale);
      const accumulate = checkBackwardOptions("attentionSoftmaxBackward", options);
      if (small(rows * cols) && canRunInPlace([dScores], [probs, dProbs])) {
        const fields = [at(dScores), at(probs), at(dProbs), scale, rows, cols, +accumulate];
        run(OP.softmaxBackward, ...fields);
      } else fallback.attentionSoftmaxBackward(dScores, probs, dProbs, scale, options);
    },
    rmsnorm(out, rstd, inp, weight, eps) {
      const { rows, cols } = checkNorm("rmsnorm", inp, { out }, { weight }, { rstd });
      checkEps("rmsnorm", eps);
      const aliasing =
        canRunInPlace([out], [inp]) &&
        disjoint([out, weight, rstd]) &&
        disjoint([inp, weight, rstd]);
      if (small(rows * cols) && aliasing)
        run(OP.rmsnorm, at(out), at(rstd), at(inp), at(weight), rows, cols, eps);
      else fallback.rmsnorm(out, rstd, inp, weight, eps);
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
      if (small(rows * cols) && outputsDisjoint([dInp, dWeight], [dOut, inp, weight, rstd])) {
        const dW = dWeight === null ? -1 : at(dWeight);
        const fields = [at(dInp), dW, at(dOut), at(inp), at(weight), at(rstd), rows, cols];
        run(OP.rmsnormBackward, ...fields, +accumulate);
      } else fallback.rmsnormBackward(dInp, dWeight, dOut, inp, weight, rstd, options);
    },
    rope(out, inp, cos, sin) {
      const { batch, time, heads, headDim } = checkRope("rope", "out", out, "inp", inp, cos, sin);
      const aliasing = canRunInPlace([out], [inp]) && disjoint([out, cos]) && disjoint([out, sin]);
      if (small(batch * time * heads * headDim) && aliasing)
        run(OP.rope, at(out), at(inp), at(cos), at(sin), batch, time, heads, headDim);
      else fallback.rope(out, inp, cos, sin);
    },
    ropeBackward(dInp, dOut, cos, sin, options) {
      const dims = checkRope("ropeBackward", "dInp", dInp, "dOut", dOut, cos, sin);
      const accumulate = checkBackwardOptions("ropeBackward", options);
      const aliasing =
        canRunInPlace([dInp], [dOut]) && disjoint([dInp, cos]) && disjoint([dInp, sin]);
      const { batch, time, heads, headDim } = dims;
      if (small(batch * time * heads * headDim) && aliasing) {
        const fields = [at(dInp), at(dOut), at(cos), at(sin), batch, time, heads, headDim];
        run(OP.ropeBackward, ...fields, +accumulate);
      } else fallback.ropeBackward(dInp, dOut, cos, sin, options);
    },
    permute0213(out, inp) {
      const { a, b, c, d } = checkPermute0213(out, inp); // also: out does not overlap inp
      if (small(a * b * c * d)) run(OP.permute0213, at(out), at(inp), a, b, c, d);
      else fallback.permute0213(out, inp);
    },
  };
}
