// The rope job: its argument layout and the per-thread loop around rope_fwd / rope_bwd /
// rope_bwd_set (emit.ts). Chunk k covers (b, t) rows [k rowsPerChunk, ...).

import { defineArgs } from "../../args.js";
import type { JobFunction, PoolJob } from "../../pool-job.js";

/** Rope over the (b, t) rows of x (B, T, H, D), cos / sin (T, D/2). */
const ROPE_ARGS = defineArgs({
  out: "ptr",
  inp: "ptr",
  cos: "ptr",
  sin: "ptr",
  /** B * T */
  rows: "i32",
  time: "i32",
  heads: "i32",
  /** D / 2 */
  half: "i32",
  /** 0: forward, 1: backward accumulating into out, 2: backward overwriting out */
  kind: "i32",
  rowsPerChunk: "i32",
});
type Spec = typeof ROPE_ARGS.spec;

/** Runs thread `thread`'s chunks of a rope job. Self-contained (shipped as source). */
const ropeThreadJob: JobFunction<Spec> = (ex, _ctl, _f32, _L, _thread, forEachChunk, args) => {
  const { out, inp, cos, sin, rows, time, heads, half, kind, rowsPerChunk: perChunk } = args;
  const fn = kind === 2 ? ex.rope_bwd_set : kind === 1 ? ex.rope_bwd : ex.rope_fwd;
  const rowBytes = heads * half * 8;
  forEachChunk((k) => {
    const r0 = k * perChunk;
    const off = r0 * rowBytes;
    fn(out + off, inp + off, cos, sin, Math.min(perChunk, rows - r0), r0 % time, time, heads, half);
  });
};

export const ROPE_JOB: PoolJob<Spec> = { name: "rope", args: ROPE_ARGS, run: ropeThreadJob };
