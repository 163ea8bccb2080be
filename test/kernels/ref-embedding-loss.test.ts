// Reference embedding (gather, scatter-add backward), fused cross-entropy (vs log-sum-exp in
// float64, gradient by finite differences, ignore index, range errors) and the reductions.

import { describe, expect, test } from "vitest";
import { crossEntropy } from "../../src/kernels/ref/cross-entropy.js";
import { embedding, embeddingBackward } from "../../src/kernels/ref/embedding.js";
import { max, sum, sumSquares } from "../../src/kernels/ref/reduce.js";
import { expectAllclose } from "../helpers/allclose.js";
import { dot, makeRng, numericalGradient, randn } from "../helpers/gradcheck.js";

const rng = makeRng(5);

describe("ref embedding", () => {
  test("gathers rows; backward scatter-adds with repeated ids (finite differences)", () => {
    const [vocab, cols] = [7, 3];
    const table = randn(rng, vocab * cols);
    const ids = Int32Array.of(3, 0, 6, 3, 3);
    const out = new Float64Array(ids.length * cols);
    embedding(out, table, ids, vocab, cols);
    for (let n = 0; n < ids.length; n++) {
      for (let c = 0; c < cols; c++) expect(out[n * cols + c]).toBe(table[ids[n] * cols + c]);
    }
    const dOut = randn(rng, out.length);
    const d0 = randn(rng, table.length);
    const dTable = d0.slice();
    embeddingBackward(dTable, dOut, ids, vocab, cols);
    const numeric = numericalGradient((t) => {
      embedding(out, t, ids, vocab, cols);
      return dot(out, dOut);
    }, table);
    expectAllclose(
      dTable.map((v, i) => v - d0[i]),
      numeric,
      { rtol: 1e-8, atol: 1e-9, label: "dTable" },
    );
  });

  test("out-of-range ids throw, naming the position; backward writes nothing then", () => {
    const table = new Float64Array(4 * 2);
    const out = new Float64Array(2 * 2);
    expect(() => embedding(out, table, Int32Array.of(1, 4), 4, 2)).toThrow(
      "ids[1] = 4 is outside the table's 4 rows",
    );
    expect(() => embedding(out, table, Int32Array.of(-1, 0), 4, 2)).toThrow(/ids\[0\] = -1/);
    const dTable = new Float64Array(8);
    expect(() =>
      embeddingBackward(dTable, Float64Array.of(1, 1, 1, 1), Int32Array.of(0, 9), 4, 2),
    ).toThrow(/ids\[1\]/);
    expect(Array.from(dTable)).toEqual(new Array(8).fill(0));
  });
});

describe("ref crossEntropy", () => {
  /** -log softmax(l)[t] = log(sum_v exp(l_v - l_t)), an independent float64 formula. */
  function expectedLoss(logits: Float64Array, row: number, vocab: number, t: number): number {
    let s = 0;
    for (let v = 0; v < vocab; v++)
      s += Math.exp(logits[row * vocab + v] - logits[row * vocab + t]);
    return Math.log(s);
  }

  for (const [rows, vocab] of [
    [1, 1],
    [3, 2],
    [5, 11],
  ] as const) {
    test(`loss and dLogits (${rows}, ${vocab}) with an ignored row`, () => {
      const logits = randn(rng, rows * vocab, 3);
      const targets = Int32Array.from({ length: rows }, (_, n) => (n * 7) % vocab);
      if (rows > 1) targets[1] = -100;
      const losses = new Float64Array(rows);
      const dLogits = new Float64Array(rows * vocab).fill(123); // overwritten, not accumulated
      const gradScale = 0.3;
      const count = crossEntropy(losses, dLogits, logits, targets, vocab, -100, gradScale);
      expect(count).toBe(rows > 1 ? rows - 1 : rows);
      for (let n = 0; n < rows; n++) {
        const expected = targets[n] === -100 ? 0 : expectedLoss(logits, n, vocab, targets[n]);
        expect(losses[n]).toBeCloseTo(expected, 12);
      }
      const scratch = new Float64Array(rows);
      const numeric = numericalGradient((l) => {
        crossEntropy(scratch, null, l, targets, vocab, -100, 1);
        return gradScale * scratch.reduce((s, v) => s + v, 0);
      }, logits);
      expectAllclose(dLogits, numeric, { rtol: 1e-6, atol: 1e-9, label: "dLogits" });
    });
  }

  test("stable for huge logits; custom ignore index", () => {
    const logits = Float64Array.of(1000, 999, -1000, 5, 5, 5);
    const losses = new Float64Array(2);
    const count = crossEntropy(losses, null, logits, Int32Array.of(1, 7), 3, 7, 1);
    expect(count).toBe(1);
    expect(losses[0]).toBeCloseTo(Math.log(1 + Math.exp(1)), 12);
    expect(losses[1]).toBe(0);
  });

  test("targets outside [0, V) that are not ignored throw before writing", () => {
    const losses = new Float64Array(2).fill(9);
    expect(() =>
      crossEntropy(losses, null, new Float64Array(6), Int32Array.of(0, 3), 3, -100, 1),
    ).toThrow("targets[1] = 3 is outside [0, 3)");
    expect(() =>
      crossEntropy(losses, null, new Float64Array(6), Int32Array.of(-1, 0), 3, -100, 1),
    ).toThrow(/targets\[0\] = -1/);
    expect(Array.from(losses)).toEqual([9, 9]);
  });
});

describe("ref reductions", () => {
  test("sum, max, sumSquares accumulate in float64", () => {
    // 2^24 + 1 + 1 + ... is not representable step by step in float32
    const a = new Float32Array(5).fill(1);
    a[0] = 2 ** 24;
    expect(sum(a)).toBe(2 ** 24 + 4);
    expect(sumSquares(Float32Array.of(3, -4))).toBe(25);
    expect(max(Float32Array.of(-3, 7, 2))).toBe(7);
    expect(max(new Float32Array(0))).toBe(-Infinity);
    expect(max(Float32Array.of(1, Number.NaN, 3))).toBeNaN();
    expect(sum(new Float32Array(0))).toBe(0);
  });
});
