// Row-wise absmax int8 (src/quant/int8.ts) against the independent numpy reference
// (scripts/fixtures/make_quant_cases.py): identical codes, scales and dequantized values; the
// half-step error bound |w - deq(q(w))| <= absmax_row / 254; chunked row dequantization.

import { describe, expect, test } from "vitest";
import {
  dequantizeInt8,
  dequantizeInt8Rows,
  int8Bytes,
  quantizeInt8,
  roundHalfToEven,
} from "../../src/quant/int8.js";
import { firstDifference, quantCases } from "./quant-fixtures.js";

describe("int8 row-wise absmax vs numpy reference", () => {
  test.each(quantCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const q = quantizeInt8(c.weight, c.rows, c.cols);
    expect(firstDifference(q.codes, c.int8Codes), "first differing code").toBe(-1);
    expect(firstDifference(q.scales, c.int8Scales), "first differing scale").toBe(-1);
    const deq = dequantizeInt8(q);
    expect(firstDifference(deq, c.int8Dequant), "first differing dequantized value").toBe(-1);

    // error bound: half a step, absmax / 254, plus float32 rounding of w / scale and q * scale
    for (let r = 0; r < c.rows; r++) {
      let absmax = 0;
      for (let k = 0; k < c.cols; k++) {
        absmax = Math.max(absmax, Math.abs(c.weight[r * c.cols + k]));
      }
      for (let k = 0; k < c.cols; k++) {
        const i = r * c.cols + k;
        expect(Math.abs(c.weight[i] - deq[i])).toBeLessThanOrEqual((absmax / 254) * (1 + 1e-5));
      }
    }
  });

  test("ties round half to even (torch.round)", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 3.4999998].map(roundHalfToEven)).toEqual([
      0, 2, 2, -0, -2, -2, 126, 3,
    ]);
    const tieCase = quantCases.find((c) => c.name === "ties_4x64");
    expect(tieCase).toBeDefined();
    // row 3 has absmax 127 -> scale exactly 1, so its codes are the rounded weights themselves
    const row3 = Array.from(tieCase?.int8Codes.subarray(3 * 64, 3 * 64 + 10) ?? []);
    expect(row3).toEqual([127, -127, 0, 2, 2, 0, -2, -2, 126, -126]);
  });

  test("zero row, chunked rows, sizes and errors", () => {
    const w = new Float32Array([0, 0, 0, 1, -2, 0.5, 4, 8, -16]); // (3, 3), row 0 all zero
    const q = quantizeInt8(w, 3, 3);
    expect(q.scales[0]).toBe(0);
    expect(Array.from(q.codes.subarray(0, 3))).toEqual([0, 0, 0]);
    const full = dequantizeInt8(q);
    const part = new Float32Array(2 + 2 * 3).fill(Number.NaN);
    dequantizeInt8Rows(q, part, 1, 3, 2);
    expect(Array.from(part.subarray(2))).toEqual(Array.from(full.subarray(3)));
    expect(Number.isNaN(part[0]) && Number.isNaN(part[1])).toBe(true);
    expect(int8Bytes(64, 96)).toBe(64 * 96 + 4 * 64);
    const withNaN = new Float32Array([1, Number.NaN]);
    expect(() => quantizeInt8(withNaN, 1, 2)).toThrow(/weight\[0, 1\] is NaN/);
    const short = new Float32Array(5);
    expect(() => quantizeInt8(short, 2, 3)).toThrow(/5 values do not fill shape \[2, 3\]/);
    expect(() => dequantizeInt8Rows(q, new Float32Array(9), 2, 4)).toThrow(/rows \[2, 4\)/);
  });
});
