// The norm job: its argument layout and the per-thread loop around rms_fwd, rms_bwd(_set), ln_fwd
// and ln_bwd(_set) (emit.ts). Chunk k covers rows [k rowsPerChunk, ...); a backward with weight
// gradients writes chunk k's partial sums at part + k (cols or 2 cols floats).

import { defineArgs } from "../../args.js";
import type { JobFunction, PoolJob } from "../../pool-job.js";

/** A norm pass over rows of cols floats. */
const NORM_ARGS = defineArgs({
  /** 0: rms_fwd, 1: rms_bwd, 2: ln_fwd, 3: ln_bwd */
  op: "i32",
  /** forwards: out; backwards: dInp */
  out: "ptr",
  /** forwards: written; backwards: read */
  rstd: "ptr",
  inp: "ptr",
  weight: "ptr",
  /** backwards: dOut */
  dOut: "ptr",
  /** ln_fwd */
  bias: "ptr",
  /** ln_fwd: written; ln_bwd: read */
  mean: "ptr",
  /** backwards: chunk 0's partial weight (and bias) gradient sums, 0 if none */
  part: "ptr",
  rows: "i32",
  cols: "i32",
  rowsPerChunk: "i32",
  /** forwards */
  eps: "f64",
  /** backwards: overwrite dInp (rms_bwd_set / ln_bwd_set) instead of adding to it */
  overwrite: "bool",
});
type Spec = typeof NORM_ARGS.spec;

/** Runs thread `thread`'s chunks of a norm job. Self-contained (shipped as source). */
const normThreadJob: JobFunction<Spec> = (ex, _ctl, _f32, _L, _thread, forEachChunk, args) => {
  const { op, out, rstd, inp, weight, dOut, part, rows, cols, eps, bias, mean, overwrite } = args;
  const perChunk = args.rowsPerChunk;
  const rmsBwd = overwrite ? ex.rms_bwd_set : ex.rms_bwd;
  const lnBwd = overwrite ? ex.ln_bwd_set : ex.ln_bwd;
  const rowBytes = cols * 4;
  forEachChunk((k) => {
    const r0 = k * perChunk;
    const n = Math.min(perChunk, rows - r0);
    const off = r0 * rowBytes;
    const st = 4 * r0;
    if (op === 0) ex.rms_fwd(out + off, rstd + st, inp + off, weight, n, cols, cols, eps);
    else if (op === 1) {
      const p = part === 0 ? 0 : part + k * rowBytes;
      rmsBwd(out + off, p, dOut + off, inp + off, weight, rstd + st, n, cols, cols);
    } else if (op === 2) {
      ex.ln_fwd(out + off, mean + st, rstd + st, inp + off, weight, bias, n, cols, cols, eps);
    } else {
      const p = part === 0 ? 0 : part + 2 * k * rowBytes;
      lnBwd(out + off, p, dOut + off, inp + off, weight, mean + st, rstd + st, n, cols, cols);
    }
  });
};

export const NORM_JOB: PoolJob<Spec> = { name: "norm", args: NORM_ARGS, run: normThreadJob };
