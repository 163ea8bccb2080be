// QuantizedWeight (src/quant/quantized-linear.ts): every kind dequantizes into a heap tensor, row
// chunks agree with the whole, `bytes` is the documented size, and y = x W~^T stays within a
// relative error bound appropriate to the format (checked against y = x W^T in float64).

import { describe, expect, test } from "vitest";
import { dequantizeInt8, quantizeInt8 } from "../../src/quant/int8.js";
import { dequantizeNf4, quantizeNf4 } from "../../src/quant/nf4.js";
import {
  type QuantKind,
  quantizeWeight,
  weightFromHalfBits,
} from "../../src/quant/quantized-linear.js";
import { f32ToBf16 } from "../../src/tensor/dtype.js";
import { Heap } from "../../src/tensor/heap.js";
import { Rng } from "../../src/util/random.js";
import { firstDifference } from "./quant-fixtures.js";

const OUT = 64;
const IN = 96;
const N = 8;

const rng = new Rng(1234);
const weight = Float32Array.from({ length: OUT * IN }, () => 0.02 * rng.normal()); // (OUT, IN)
const x = Float64Array.from({ length: N * IN }, () => rng.normal()); // (N, IN)

/** y (N, OUT) = x W^T in float64. */
function linear(w: ArrayLike<number>): Float64Array {
  const y = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OUT; o++) {
      let s = 0;
      for (let i = 0; i < IN; i++) s += x[n * IN + i] * w[o * IN + i];
      y[n * OUT + o] = s;
    }
  }
  return y;
}

function relativeError(a: Float64Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

// Bounds on ||x W~^T - x W^T||_F / ||x W^T||_F. The 16-bit formats round each weight with relative
// error <= 2^-9 (bf16, 8 significand bits) / 2^-12 (f16, 11 bits), so the output error is below
// that unit roundoff times a small factor: bound 2^-8 and 2^-11. int8 errors are <= absmax/254 per
// weight (absmax ~ 3 sigma for 96 Gaussian weights: ~1% of sigma, ~0.6% rms); NF4 has 16 levels
// per block, QLoRA-typical ~10% rms on Gaussian weights.
const BOUNDS: Record<QuantKind, number> = {
  f32: 0,
  bf16: 2 ** -8,
  f16: 2 ** -11,
  int8: 2 ** -6,
  nf4: 0.15,
};
const BYTES: Record<QuantKind, number> = {
  f32: 4 * OUT * IN,
  bf16: 2 * OUT * IN,
  f16: 2 * OUT * IN,
  int8: OUT * IN + 4 * OUT,
  nf4: (OUT * IN) / 2 + (4 * OUT * IN) / 64,
};

describe("QuantizedWeight", () => {
  const heap = new Heap({ initialBytes: 1 << 20, maxBytes: 8 << 20 });
  const yRef = linear(weight);
  const errorOf = (kind: QuantKind): number => {
    const out = heap.tensor([OUT, IN]);
    quantizeWeight(kind, weight, [OUT, IN]).dequantizeInto(out);
    const err = relativeError(linear(out.toArray()), yRef);
    out.dispose();
    return err;
  };

  const kinds = Object.keys(BOUNDS) as QuantKind[];
  test.each(kinds)("%s: y = x W^T error, row chunks, bytes", (kind) => {
    const q = quantizeWeight(kind, weight, [OUT, IN]);
    expect(q.kind).toBe(kind);
    expect(q.shape).toEqual([OUT, IN]);
    expect(q.bytes).toBe(BYTES[kind]);

    const full = heap.tensor([OUT, IN]);
    full.fill(Number.NaN);
    q.dequantizeInto(full);
    const deq = full.toArray();
    const err = relativeError(linear(deq), yRef);
    console.log(`${kind}: ${q.bytes} bytes, relative output error ${err.toExponential(3)}`);
    if (kind === "f32") expect(firstDifference(deq, weight)).toBe(-1);
    else expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThanOrEqual(BOUNDS[kind]);

    // rows [17, 41) dequantized on their own equal the same rows of the whole
    const chunk = heap.tensor([41 - 17, IN]);
    q.dequantizeRowsInto(chunk, 17, 41);
    expect(firstDifference(chunk.toArray(), deq.subarray(17 * IN, 41 * IN))).toBe(-1);
    expect(() => q.dequantizeRowsInto(chunk, 17, 42)).toThrow(/dequantize target must be f32/);
    expect(() => q.dequantizeRowsInto(chunk, 50, 74)).toThrow(/rows \[50, 74\) out of range/);
    chunk.dispose();
    full.dispose();
  });

  test("kinds order by precision; codecs agree with the direct quantizers", () => {
    expect(errorOf("f16")).toBeLessThan(errorOf("bf16"));
    expect(errorOf("bf16")).toBeLessThan(errorOf("int8"));
    expect(errorOf("int8")).toBeLessThan(errorOf("nf4"));

    const out = heap.tensor([OUT, IN]);
    quantizeWeight("int8", weight, [OUT, IN]).dequantizeInto(out);
    expect(firstDifference(out.toArray(), dequantizeInt8(quantizeInt8(weight, OUT, IN)))).toBe(-1);
    quantizeWeight("nf4", weight, [OUT, IN], { blocksize: 128 }).dequantizeInto(out);
    expect(firstDifference(out.toArray(), dequantizeNf4(quantizeNf4(weight, 128)))).toBe(-1);
    // bf16 kept from checkpoint bits equals bf16 encoded from f32
    const bits = Uint16Array.from(weight, f32ToBf16);
    const fromBits = weightFromHalfBits("bf16", bits, [OUT, IN]);
    const viaF32 = heap.tensor([OUT, IN]);
    fromBits.dequantizeInto(out);
    quantizeWeight("bf16", weight, [OUT, IN]).dequantizeInto(viaF32);
    expect(firstDifference(out.toArray(), viaF32.toArray())).toBe(-1);
    out.dispose();
    viaF32.dispose();
  });

  test.each(kinds)("%s: empty weights ([0, 5] and [3, 0]) have no bytes of codes", (kind) => {
    for (const shape of [
      [0, 5],
      [3, 0],
    ]) {
      const q = quantizeWeight(kind, new Float32Array(0), shape);
      const out = heap.tensor(shape);
      q.dequantizeInto(out);
      expect(q.bytes).toBe(kind === "int8" ? 4 * shape[0] : 0);
      out.dispose();
    }
  });

  test("bad shapes and kinds are rejected with the shape in the message", () => {
    const badShape = [OUT, IN + 1];
    expect(() => quantizeWeight("int8", weight, badShape)).toThrow(/do not fill shape \[64, 97\]/);
    expect(() => quantizeWeight("f16", weight, [OUT * IN])).toThrow(/must be 2-D/);
    const unknown = "q2" as QuantKind;
    expect(() => quantizeWeight(unknown, weight, [OUT, IN])).toThrow(/supported: f32, bf16/);
    const i32 = heap.tensor([OUT, IN], "i32");
    const f32Weight = quantizeWeight("f32", weight, [OUT, IN]);
    expect(() => f32Weight.dequantizeInto(i32)).toThrow(/must be f32/);
    i32.dispose();
  });
});
