// wasm embedding (row gather) and embeddingBackward (row scatter-add) against the reference
// kernels, which test/kernels/ref-embedding-loss.test.ts checks by finite differences: bitwise
// equal results for widths that are and are not multiples of 4, repeated ids (the adds happen in
// id order, as the reference's), and a bad id that writes nothing.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import { randomUniform } from "../helpers/random.js";

describe.each([1, 2])("wasm embedding, %i thread(s)", (threads) => {
  let heap: Heap;
  let wasm: Kernels;
  let ref: Kernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 16 * 2 ** 20 });
    wasm = await createWasmKernels(heap, { threads });
    ref = createRefKernels(heap);
  });
  afterAll(async () => {
    await wasm.dispose();
  });

  const cases = [
    { vocab: 7, cols: 1, count: 5 },
    { vocab: 50, cols: 13, count: 40 },
    { vocab: 300, cols: 64, count: 129 },
  ];

  test.each(cases)(
    "gather and scatter-add: vocab $vocab, cols $cols, $count ids",
    ({ vocab, cols, count }) => {
      const table = heap.fromArray(randomUniform(vocab * cols, vocab + cols, 2), [vocab, cols]);
      // repeated ids on purpose: every third id is 3
      const ids = heap.fromArray(
        Int32Array.from({ length: count }, (_, n) => (n % 3 === 0 ? 3 : (n * 7919) % vocab)),
      );
      const got = heap.tensor([count, cols]).fill(Number.NaN);
      const want = heap.tensor([count, cols]);
      wasm.embedding(got, table, ids);
      ref.embedding(want, table, ids);
      expect(Array.from(got.f32())).toEqual(Array.from(want.f32()));

      const dOut = heap.fromArray(randomUniform(count * cols, count, 1), [count, cols]);
      const prefill = randomUniform(vocab * cols, 99, 0.5);
      const dGot = heap.fromArray(prefill, [vocab, cols]);
      const dWant = heap.fromArray(prefill, [vocab, cols]);
      wasm.embeddingBackward(dGot, dOut, ids);
      ref.embeddingBackward(dWant, dOut, ids);
      expect(Array.from(dGot.f32())).toEqual(Array.from(dWant.f32()));
      // the repeated row really accumulated every occurrence
      let sum = prefill[3 * cols];
      const idv = ids.i32();
      for (let n = 0; n < count; n++)
        if (idv[n] === 3) sum = Math.fround(sum + dOut.f32()[n * cols]);
      expect(dGot.f32()[3 * cols]).toBeCloseTo(sum, 5);
    },
  );

  test("an id out of range throws, naming it, before anything is written", () => {
    const table = heap.fromArray(randomUniform(12, 1, 1), [4, 3]);
    const ids = heap.fromArray(Int32Array.of(1, 2, 4));
    const out = heap.tensor([3, 3]).fill(7);
    expect(() => wasm.embedding(out, table, ids)).toThrow(
      "embedding: ids[2] = 4 is outside the table's 4 rows",
    );
    expect(Array.from(out.f32())).toEqual(new Array(9).fill(7));
    const dTable = heap.tensor([4, 3]).fill(5);
    const negative = heap.fromArray(Int32Array.of(0, -1, 1));
    expect(() => wasm.embeddingBackward(dTable, out, negative)).toThrow(
      /embeddingBackward: ids\[1\] = -1/,
    );
    expect(Array.from(dTable.f32())).toEqual(new Array(12).fill(5));
  });
});
