// Reference embedding lookup (gather) and its backward (scatter-add). Ids are checked here:
// an id outside [0, V) throws, naming the position and the id.
//
// Legend: N lookups, V vocabulary rows, C channels; table/dTable (V, C), out/dOut (N, C), ids (N).

import type { Floats } from "./types.js";

function checkId(op: string, ids: Int32Array, n: number, vocab: number): number {
  const id = ids[n];
  if (id < 0 || id >= vocab) {
    throw new RangeError(`${op}: ids[${n}] = ${id} is outside the table's ${vocab} rows`);
  }
  return id;
}

/** out[n, :] = table[ids[n], :] */
export function embedding(
  out: Floats,
  table: Floats,
  ids: Int32Array,
  vocab: number,
  cols: number,
): void {
  for (let n = 0; n < ids.length; n++) {
    const src = checkId("embedding", ids, n, vocab) * cols;
    const dst = n * cols;
    for (let c = 0; c < cols; c++) out[dst + c] = table[src + c];
  }
}

/** Checks every id against [0, vocab) before anything is written (the wasm kernels use it too). */
export function checkIds(op: string, ids: Int32Array, vocab: number): void {
  for (let n = 0; n < ids.length; n++) checkId(op, ids, n, vocab);
}

/** dTable[ids[n], :] += dOut[n, :] (repeated ids add up). Ids are all checked before any write. */
export function embeddingBackward(
  dTable: Floats,
  dOut: Floats,
  ids: Int32Array,
  vocab: number,
  cols: number,
): void {
  checkIds("embeddingBackward", ids, vocab);
  for (let n = 0; n < ids.length; n++) {
    const dst = ids[n] * cols;
    const src = n * cols;
    for (let c = 0; c < cols; c++) dTable[dst + c] += dOut[src + c];
  }
}
