// The embedding family: embedding (row gather) and embeddingBackward (row scatter-add) on the
// calling thread: memory-bound, a few rows of a few KiB, so no pool job. It has no generated code
// of its own: one perm_copy (the permute family) per gathered row, one in-place "add" (the
// elementwise family) per scattered row, instead of the reference's element loop.
// Ids are all checked first, so a bad one writes nothing; repeated ids add up in order, as the
// reference does. Fallback to the reference: ids that overlap the output.

import { checkIds } from "../../../ref/embedding.js";
import { checkEmbedding } from "../../../validate.js";
import { exported, type FamilyContext, type WasmFamily } from "../../family.js";
import { overlaps } from "../../overlap.js";
import { EW_OPS } from "../elementwise/emit.js";

export const embeddingFamily: WasmFamily<"embedding" | "embeddingBackward"> = {
  name: "embedding",
  provides: ["embedding", "embeddingBackward"],
  jobs: [],
  create: ({ pool, ref }: FamilyContext) => {
    const copyRow = exported<
      (dst: number, src: number, rows: number, d: number, srcStride: number) => void
    >(pool.exports, "perm_copy");
    const addRow = exported<(...args: number[]) => void>(
      pool.exports,
      `ew${EW_OPS.indexOf("add")}`,
    );
    return {
      embedding(out, table, ids) {
        const { vocab, cols } = checkEmbedding("embedding", "out", out, "table", table, ids);
        if (overlaps(out, ids)) return ref.embedding(out, table, ids);
        const idv = ids.i32();
        checkIds("embedding", idv, vocab);
        const rowBytes = cols * 4;
        for (let n = 0; n < idv.length; n++)
          copyRow(out.ptr + n * rowBytes, table.ptr + idv[n] * rowBytes, 1, cols, 0);
      },
      embeddingBackward(dTable, dOut, ids) {
        const { vocab, cols } = checkEmbedding(
          "embeddingBackward",
          "dOut",
          dOut,
          "dTable",
          dTable,
          ids,
        );
        if (overlaps(dTable, ids)) return ref.embeddingBackward(dTable, dOut, ids);
        const idv = ids.i32();
        checkIds("embeddingBackward", idv, vocab);
        const rowBytes = cols * 4;
        for (let n = 0; n < idv.length; n++) {
          const dst = dTable.ptr + idv[n] * rowBytes;
          addRow(dst, 0, dst, dOut.ptr + n * rowBytes, 0, cols, 0); // dTable[id] += dOut[n]
        }
      },
    };
  },
};
