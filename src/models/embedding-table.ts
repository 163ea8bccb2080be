// The token embedding table of a model, (V, C): an f32 heap tensor (the usual case), or kept off
// the heap (offloaded frozen weights, models/weights.ts) as f32 / bf16 / f16 host data whose rows
// are gathered, widened to f32, straight into the activation buffer for the tokens of a batch.
//
// Contract: lookup writes exactly what kernels.embedding writes for the same f32 values (a row copy
// per token); an off-heap table has no heap tensor, so it takes no gradient (the model's
// paramGrads check rejects its name, as it is not in params).

import type { Kernels } from "../kernels/kernels.js";
import type { QuantizedWeight } from "../quant/quantized-linear.js";
import type { Heap } from "../tensor/heap.js";
import type { Tensor } from "../tensor/tensor.js";

export class EmbeddingTable {
  readonly name: string;
  /** (V, C) */
  readonly shape: readonly [number, number];
  readonly size: number;
  private readonly heapTable: Tensor | null;
  private readonly offHeap: QuantizedWeight | null;

  /** Exactly one of `heapTable` (f32) and `offHeap` (float kind, (V, C) rows) is given. */
  constructor(name: string, heapTable: Tensor | null, offHeap: QuantizedWeight | null) {
    const shape = heapTable?.shape ?? offHeap?.shape;
    if ((heapTable === null) === (offHeap === null) || shape === undefined || shape.length !== 2)
      throw new Error(`internal: embedding ${name} needs one (V, C) storage`);
    if (heapTable !== null && heapTable.dtype !== "f32")
      throw new Error(`internal: heap embedding ${name} must be f32, got ${heapTable.dtype}`);
    if (
      offHeap !== null &&
      offHeap.kind !== "f32" &&
      offHeap.kind !== "bf16" &&
      offHeap.kind !== "f16"
    )
      throw new Error(
        `internal: off-heap embedding ${name} must be a float kind, got ${offHeap.kind}`,
      );
    this.name = name;
    this.shape = [shape[0], shape[1]];
    this.size = shape[0] * shape[1];
    this.heapTable = heapTable;
    this.offHeap = offHeap;
  }

  /** The heap tensor (f32), or null when the table lives off the heap. */
  get tensor(): Tensor | null {
    return this.heapTable;
  }

  /** An f32 copy of the table (V, C); an off-heap one passes through `heap` a block of rows at a time. */
  readF32(heap: Heap): Float32Array {
    if (this.heapTable !== null) return this.heapTable.toArray();
    const table = this.offHeap as QuantizedWeight;
    const [V, C] = this.shape;
    const out = new Float32Array(this.size); // (V, C)
    const rows = Math.max(1, Math.min(V, Math.floor(2 ** 20 / Math.max(1, C)))); // ~4 MiB blocks
    const block = heap.tensor([rows, C]);
    try {
      for (let r = 0; r < V; r += rows) {
        const n = Math.min(rows, V - r);
        const view = block.view([n, C]);
        table.dequantizeRowsInto(view, r, r + n);
        out.set(view.f32(), r * C);
      }
    } finally {
      block.dispose();
    }
    return out;
  }

  /** out (R, C) = rows ids (R) of the table. Ids are valid (the model validated the batch). */
  lookup(kernels: Kernels, out: Tensor, ids: Tensor): void {
    if (this.heapTable !== null) {
      kernels.embedding(out, this.heapTable, ids);
      return;
    }
    const table = this.offHeap as QuantizedWeight;
    const C = this.shape[1];
    const idx = ids.i32();
    for (let r = 0; r < idx.length; r++)
      table.dequantizeRowsInto(out.view([1, C], r * C), idx[r], idx[r] + 1);
    kernels.upload(out); // written by the host
  }
}
