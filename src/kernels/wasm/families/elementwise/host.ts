// The elementwise family: add, mul, scale, axpy, silu, swiglu and their backwards on the pool
// (emit.ts, job.ts). Fallback to the reference when an output partially overlaps an input (or,
// for swigluBackward, the two outputs overlap). BackwardOptions ({ accumulate: false }) select the
// overwriting variants.

import type { Tensor } from "../../../../tensor/tensor.js";
import { checkBackwardOptions, checkElementwise, checkScalar } from "../../../validate.js";
import { CHUNK_ELEMS, threadsFor } from "../../chunking.js";
import type { FamilyContext, WasmFamily } from "../../family.js";
import { canRunInPlace, overlaps } from "../../overlap.js";
import { EW_OPS, type EwOp, emitElementwise } from "./emit.js";
import { ELEMENTWISE_JOB } from "./job.js";

type Provided =
  | "add"
  | "mul"
  | "scale"
  | "axpy"
  | "silu"
  | "siluBackward"
  | "swiglu"
  | "swigluBackward";

export const elementwiseFamily: WasmFamily<Provided> = {
  name: "elementwise",
  provides: ["add", "mul", "scale", "axpy", "silu", "siluBackward", "swiglu", "swigluBackward"],
  emit: emitElementwise,
  jobs: [ELEMENTWISE_JOB],
  create: ({ pool, ref, config }: FamilyContext) => {
    /**
     * Runs elementwise op `op` over n elements. Outputs must each be an input's very buffer or
     * disjoint from every input (checked by the callers with `canRunInPlace`).
     */
    function elementwise(op: EwOp, outs: Tensor[], ins: Tensor[], n: number, scalar = 0): void {
      if (n === 0) return;
      pool.dispatch(
        ELEMENTWISE_JOB,
        {
          op: EW_OPS.indexOf(op),
          out0: outs[0].ptr,
          out1: outs.length > 1 ? outs[1].ptr : 0,
          in0: ins[0].ptr,
          in1: ins.length > 1 ? ins[1].ptr : 0,
          in2: ins.length > 2 ? ins[2].ptr : 0,
          n,
          scalar,
          chunk: CHUNK_ELEMS,
        },
        threadsFor(n, config.threads),
        Math.ceil(n / CHUNK_ELEMS),
      );
    }

    return {
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
          const op = accumulate ? "siluBackward" : "siluBackwardOverwrite";
          elementwise(op, [dInp], [inp, dOut], n);
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
    };
  },
};
