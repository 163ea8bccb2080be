// The norms family: rmsnorm, layernorm and their backwards on the pool (emit.ts, job.ts).
// Weight and bias gradients: each chunk's partial sums go to the shared scratch block
// (NORM_PARTIAL_FLOATS), then the calling thread adds them in chunk order (colsum_add), so the
// result does not depend on the thread count.
// Fallbacks to the reference: a forward whose output partially overlaps its input, or that
// overlaps the weights / statistics; a backward whose outputs overlap anything (the reference
// reads inputs after writing dInp, so even an exact alias gives another result), or whose row is
// longer than the partials block.

import type { Tensor } from "../../../../tensor/tensor.js";
import { checkBackwardOptions, checkEps, checkNorm } from "../../../validate.js";
import { rowsPerChunk, threadsFor } from "../../chunking.js";
import { exported, type FamilyContext, type WasmFamily } from "../../family.js";
import { canRunInPlace, disjoint, outputsDisjoint } from "../../overlap.js";
import { emitNorms } from "./emit.js";
import { NORM_JOB } from "./job.js";

/** Floats of the shared block for the backwards' chunk partials (one or two rows of C each). */
export const NORM_PARTIAL_FLOATS = 1 << 17;

type Provided = "rmsnorm" | "rmsnormBackward" | "layernorm" | "layernormBackward";

export const normsFamily: WasmFamily<Provided> = {
  name: "norms",
  provides: ["rmsnorm", "rmsnormBackward", "layernorm", "layernormBackward"],
  emit: emitNorms,
  jobs: [NORM_JOB],
  create: ({ pool, ref, config, scratch }: FamilyContext) => {
    const normPartials = scratch.normPartials;
    const colsumAdd = exported<(...args: number[]) => void>(pool.exports, "colsum_add");

    /**
     * Runs a norm pass (NORM_ARGS.op: 0 rms_fwd, 1 rms_bwd, 2 ln_fwd, 3 ln_bwd) over rows of cols
     * floats. Backwards with dWeight / dBias: chunk partials in normPartials (cols floats per
     * chunk for RMSNorm, 2 cols for LayerNorm: see emit.ts), then added into them in chunk order.
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
      let perChunk = rowsPerChunk(cols);
      const maxChunks = Math.floor(NORM_PARTIAL_FLOATS / partialFloats);
      if (withPartials && Math.ceil(rows / perChunk) > maxChunks)
        perChunk = Math.ceil(rows / maxChunks);
      const chunks = Math.ceil(rows / perChunk);
      pool.dispatch(
        NORM_JOB,
        {
          op,
          ...ptrs,
          part: withPartials ? normPartials : 0,
          rows,
          cols,
          rowsPerChunk: perChunk,
          eps,
          overwrite: overwriteDInp,
        },
        threadsFor(rows * cols, config.threads),
        chunks,
      );
      const stride = 4 * partialFloats;
      if (dWeight !== null) colsumAdd(dWeight.ptr, normPartials, chunks, cols, stride);
      if (dBias !== null) colsumAdd(dBias.ptr, normPartials + 4 * cols, chunks, cols, stride);
    }

    return {
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
        const { rows, cols } = checkNorm(
          "layernorm",
          inp,
          { out },
          { weight, bias },
          { mean, rstd },
        );
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
    };
  },
};
