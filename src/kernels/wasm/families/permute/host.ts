// The permute family: permute0213 on the pool (emit.ts, job.ts). Fallback: none needed (the
// validation already rejects an out that overlaps inp).

import { checkPermute0213 } from "../../../validate.js";
import { rowsPerChunk, threadsFor } from "../../chunking.js";
import type { FamilyContext, WasmFamily } from "../../family.js";
import { emitPermute } from "./emit.js";
import { PERMUTE_JOB } from "./job.js";

export const permuteFamily: WasmFamily<"permute0213"> = {
  name: "permute",
  provides: ["permute0213"],
  emit: emitPermute,
  jobs: [PERMUTE_JOB],
  create: ({ pool, config }: FamilyContext) => ({
    permute0213(out, inp) {
      const { a, b, c, d } = checkPermute0213(out, inp); // also: out does not overlap inp
      const rows = a * b * c;
      if (rows === 0 || d === 0) return;
      const perChunk = rowsPerChunk(d);
      pool.dispatch(
        PERMUTE_JOB,
        { out: out.ptr, inp: inp.ptr, a, b, c, d, rowsPerChunk: perChunk },
        threadsFor(rows * d, config.threads),
        Math.ceil(rows / perChunk),
      );
    },
  }),
};
