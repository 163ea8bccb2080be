// The rope family: rope and ropeBackward on the pool (emit.ts, job.ts). Fallback to the reference
// when the output partially overlaps the input, or overlaps the cos / sin tables.

import type { Tensor } from "../../../../tensor/tensor.js";
import { checkBackwardOptions, checkRope } from "../../../validate.js";
import { rowsPerChunk, threadsFor } from "../../chunking.js";
import type { FamilyContext, WasmFamily } from "../../family.js";
import { canRunInPlace, disjoint } from "../../overlap.js";
import { emitRope } from "./emit.js";
import { ROPE_JOB } from "./job.js";

export const ropeFamily: WasmFamily<"rope" | "ropeBackward"> = {
  name: "rope",
  provides: ["rope", "ropeBackward"],
  emit: emitRope,
  jobs: [ROPE_JOB],
  create: ({ pool, ref, config }: FamilyContext) => {
    /**
     * Runs rope over the (b, t) rows of x (B, T, H, D). kind (ROPE_ARGS.kind): 0 forward,
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
      const perChunk = rowsPerChunk(rowFloats);
      pool.dispatch(
        ROPE_JOB,
        {
          out: out.ptr,
          inp: inp.ptr,
          cos: cos.ptr,
          sin: sin.ptr,
          rows,
          time: dims.time,
          heads: dims.heads,
          half: dims.headDim / 2,
          kind,
          rowsPerChunk: perChunk,
        },
        threadsFor(rows * rowFloats, config.threads),
        Math.ceil(rows / perChunk),
      );
    }

    return {
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
    };
  },
};
