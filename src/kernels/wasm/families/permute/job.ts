// The permute0213 job: its argument layout and the per-thread loop around perm_copy (emit.ts).
//
// The job numbers the rows of out r = (ia C + ic) B + ib (A C B rows of D floats); chunk k covers
// rows [k rowsPerChunk, ...), cut into runs of equal (ia, ic), each one perm_copy call: the rows of
// a run are contiguous in out and C D floats apart in inp. Each thread writes whole contiguous
// stretches of out, so the threads' written cache lines stay apart (docs/engine-notes.md,
// "Permute"). out must not overlap inp.

import { defineArgs } from "../../args.js";
import type { JobFunction, PoolJob } from "../../pool-job.js";

/** permute0213 of inp (a, b, c, d) into out (a, c, b, d). */
const PERMUTE_ARGS = defineArgs({
  out: "ptr",
  inp: "ptr",
  a: "i32",
  b: "i32",
  c: "i32",
  d: "i32",
  rowsPerChunk: "i32",
});
type Spec = typeof PERMUTE_ARGS.spec;

/** Runs thread `thread`'s chunks of a permute0213 job. Self-contained (shipped as source). */
const permuteThreadJob: JobFunction<Spec> = (ex, _ctl, _f32, _L, _thread, forEachChunk, args) => {
  const { out, inp, a, b, c, d, rowsPerChunk: perChunk } = args;
  const total = a * b * c;
  const copy = ex.perm_copy;
  forEachChunk((k) => {
    const r1 = Math.min(total, (k + 1) * perChunk);
    let r = k * perChunk;
    while (r < r1) {
      const ib = r % b;
      const ac = (r - ib) / b; // ia * c + ic
      const ic = ac % c;
      const ia = (ac - ic) / c;
      const n = Math.min(r1 - r, b - ib);
      copy(out + r * d * 4, inp + ((ia * b + ib) * c + ic) * d * 4, n, d, c * d * 4);
      r += n;
    }
  });
};

export const PERMUTE_JOB: PoolJob<Spec> = {
  name: "permute0213",
  args: PERMUTE_ARGS,
  run: permuteThreadJob,
};
