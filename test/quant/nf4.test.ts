// NF4 blockwise quantization (src/quant/nf4.ts) against the independent numpy reference
// (scripts/fixtures/make_quant_cases.py): identical packed bytes, absmax and dequantized values,
// including exact ties on the code midpoints, a partial last block, an odd element count, a zero
// block and blocksize 32; the nearest-code error bound; storage size; nibble order.

import { describe, expect, test } from "vitest";
import {
  dequantizeNf4,
  dequantizeNf4Range,
  NF4_BOUNDARIES,
  NF4_CODE,
  nf4Bytes,
  nf4CodeOf,
  quantizeNf4,
} from "../../src/quant/nf4.js";
import {
  firstDifference,
  quantCases,
  referenceNf4Code,
  referenceNf4Midpoints,
} from "./quant-fixtures.js";

// Pivots of bitsandbytes' dQuantizeNF4 decision tree (csrc/kernels.cu), as float32 literals.
const BITSANDBYTES_PIVOTS = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
  -0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
  0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
  0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
].map(Math.fround);

describe("NF4 code table", () => {
  test("codes and boundaries match the reference and bitsandbytes' pivots", () => {
    expect(firstDifference(NF4_CODE, referenceNf4Code)).toBe(-1);
    expect(firstDifference(NF4_BOUNDARIES, referenceNf4Midpoints)).toBe(-1);
    expect(Array.from(NF4_BOUNDARIES)).toEqual(BITSANDBYTES_PIVOTS);
  });

  test("nearest code, ties to the lower code", () => {
    for (let k = 0; k < 16; k++) expect(nf4CodeOf(NF4_CODE[k])).toBe(k);
    for (let k = 0; k < 15; k++) {
      const t = NF4_BOUNDARIES[k];
      expect(nf4CodeOf(t)).toBe(k); // exactly on the boundary: lower code
      expect(nf4CodeOf(t + Math.abs(t) * 2 ** -20 + 1e-30)).toBe(k + 1);
    }
    expect(nf4CodeOf(-5)).toBe(0);
    expect(nf4CodeOf(5)).toBe(15);
  });
});

describe("NF4 blockwise quantization vs numpy reference", () => {
  test.each(quantCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const q = quantizeNf4(c.weight, c.blocksize);
    expect(q.packed.length).toBe(c.nf4Packed.length);
    expect(firstDifference(q.packed, c.nf4Packed), "first differing packed byte").toBe(-1);
    expect(firstDifference(q.absmax, c.nf4Absmax), "first differing absmax").toBe(-1);
    const deq = dequantizeNf4(q);
    expect(firstDifference(deq, c.nf4Dequant), "first differing dequantized value").toBe(-1);

    // error bound: half the widest gap between adjacent codes, times the block's absmax
    let widest = 0;
    for (let k = 0; k < 15; k++) widest = Math.max(widest, NF4_CODE[k + 1] - NF4_CODE[k]);
    for (let i = 0; i < c.weight.length; i++) {
      const amax = q.absmax[Math.floor(i / c.blocksize)];
      expect(Math.abs(c.weight[i] - deq[i])).toBeLessThanOrEqual((widest / 2) * amax * (1 + 1e-6));
    }
    expect(nf4Bytes(c.weight.length, c.blocksize)).toBe(q.packed.byteLength + q.absmax.byteLength);
  });

  test("first element in the high nibble; odd count padded with the zero code", () => {
    const q = quantizeNf4(new Float32Array([-1, 1, 0]));
    expect(Array.from(q.packed)).toEqual([0x0f, 0x77]);
    expect(Array.from(q.absmax)).toEqual([1]);
  });

  test("size is about half a byte per weight plus 4/64", () => {
    const n = 4096 * 64;
    expect(nf4Bytes(n) / n).toBeCloseTo(0.5 + 4 / 64, 12);
    expect(nf4Bytes(100, 64)).toBe(50 + 2 * 4);
  });

  test("range dequantization equals the full result; bad input is rejected", () => {
    const c = quantCases.find((x) => x.name === "partial_8x100");
    expect(c).toBeDefined();
    if (c === undefined) return;
    const q = quantizeNf4(c.weight, c.blocksize);
    const full = dequantizeNf4(q);
    const part = new Float32Array(1 + 3 * 100);
    // rows 5..7 span a block border and end in the partial block
    dequantizeNf4Range(q, part, 5 * 100, 8 * 100, 1);
    expect(firstDifference(part.subarray(1), full.subarray(500, 800))).toBe(-1);
    const withInf = new Float32Array([0, Number.POSITIVE_INFINITY]);
    expect(() => quantizeNf4(withInf)).toThrow(/element 1 is Infinity/);
    expect(() => quantizeNf4(new Float32Array(4), 0)).toThrow(/blocksize/);
    expect(() => dequantizeNf4Range(q, part, 700, 801)).toThrow(/\[700, 801\)/);
  });
});
