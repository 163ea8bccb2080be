// The elementwise job: its argument layout and the per-thread loop around the generated `ew<i>`
// functions (emit.ts). Chunk c covers elements [c chunk, min(n, (c + 1) chunk)).

import { defineArgs } from "../../args.js";
import type { JobFunction, PoolJob } from "../../pool-job.js";

/** One elementwise op over n floats (emit.ts: the signature of the generated functions). */
const ELEMENTWISE_ARGS = defineArgs({
  /** index in EW_OPS: runs export `ew${op}` */
  op: "i32",
  out0: "ptr",
  /** 0: unused */
  out1: "ptr",
  in0: "ptr",
  in1: "ptr",
  in2: "ptr",
  n: "u32",
  scalar: "f32",
  /** elements per chunk */
  chunk: "i32",
});
type Spec = typeof ELEMENTWISE_ARGS.spec;

/** Runs thread `thread`'s chunks of an elementwise job. Self-contained (shipped as source). */
const elementwiseThreadJob: JobFunction<Spec> = (ex, _c, _f, _L, _t, forEachChunk, args) => {
  const { op, out0, out1, in0, in1, in2, n, scalar, chunk } = args;
  const fn = ex[`ew${op}`];
  forEachChunk((c) => {
    const start = c * chunk;
    const off = start * 4;
    fn(out0 + off, out1 + off, in0 + off, in1 + off, in2 + off, Math.min(chunk, n - start), scalar);
  });
};

export const ELEMENTWISE_JOB: PoolJob<Spec> = {
  name: "elementwise",
  args: ELEMENTWISE_ARGS,
  run: elementwiseThreadJob,
};
