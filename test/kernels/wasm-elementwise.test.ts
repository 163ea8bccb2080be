// wasm elementwise kernels (add, mul, scale, axpy, silu, swiglu and backwards) vs the reference:
// sizes around the 4-lane vectors and the 16384-element chunks, 1 and 2 threads, values including
// large magnitudes (exp clamping), an output that is an input, and a partially overlapping output
// (which must fall back to the reference and still be right).
// Tolerance: the SIMD exp has relative error ~1e-7 and f32 rounding differs from the f64-evaluated
// reference by a few ulps, so |got - want| <= 4e-6 * (sum of the magnitudes of the terms) + 1e-30.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWasmKernels, type WasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { randomUniform } from "../helpers/random.js";

/** randomUniform, with special values at the start. */
function random(n: number, seed: number, range: number): Float32Array {
  const v = randomUniform(n, seed, range);
  // special values at the start: zeros, the exp clamp region and beyond
  const special = [0, -0, 1, -1, 88, -88, 95, -95, 120, -120, -1.2785];
  for (let i = 0; i < Math.min(n, special.length); i++) v[i] = special[i];
  return v;
}

type Op = "add" | "mul" | "scale" | "axpy" | "silu" | "siluBackward" | "swiglu" | "swigluBackward";
const ops: Op[] = ["add", "mul", "scale", "axpy", "silu", "siluBackward", "swiglu", "swigluBackward"];
const sizes = [1, 3, 4, 5, 7, 17, 1000, 16384, 16385, 65536 + 5, 150001];

/** Runs `op` with kernels `k` on tensors made from the given arrays; returns the outputs. */
function run(k: Kernels, heap: Heap, op: Op, x: Float32Array[], alias: boolean): Float32Array[] {
  const t = x.map((v) => heap.fromArray(v));
  const [a, b, c, d, e] = t;
  // when `alias`, the (first) output is the first input's buffer
  const out = alias ? a : heap.fromArray(x[x.length - 1]);
  const result: Tensor[] = [out];
  switch (op) {
    case "add":
      k.add(out, a, b);
      break;
    case "mul":
      k.mul(out, a, b);
      break;
    case "scale":
      k.scale(out, a, -1.75);
      break;
    case "axpy":
      k.axpy(out, a, 0.625);
      break;
    case "silu":
      k.silu(out, a);
      break;
    case "siluBackward":
      k.siluBackward(c, a, b); // dInp = c (accumulated)
      result[0] = c;
      break;
    case "swiglu":
      k.swiglu(out, a, b);
      break;
    case "swigluBackward":
      k.swigluBackward(d, e, a, b, c);
      result[0] = d;
      result.push(e);
      break;
  }
  const values = result.map((r) => r.toArray());
  for (const tensor of new Set([...t, out])) tensor.dispose();
  return values;
}

/** Per-element magnitude of the terms of each output, for the tolerance. */
function magnitudes(op: Op, x: Float32Array[], i: number): number[] {
  const [a, b, c, d, e] = x.map((v) => Math.abs(v[i]));
  switch (op) {
    case "add":
      return [a + b];
    case "mul":
      return [a * b];
    case "scale":
      return [1.75 * a];
    case "axpy":
      return [Math.abs(x[x.length - 1][i]) + 0.625 * a];
    case "silu":
      return [a];
    case "siluBackward":
      return [c + b * (1 + a)];
    case "swiglu":
      return [a * b];
    case "swigluBackward":
      return [d + c * b * (1 + a), e + c * a];
  }
}

const inputCount: Record<Op, number> = {
  add: 3,
  mul: 3,
  scale: 2,
  axpy: 2,
  silu: 2,
  siluBackward: 3,
  swiglu: 3,
  swigluBackward: 5,
};

describe.each([1, 2])("wasm elementwise, %i thread(s)", (threads) => {
  let heap: Heap;
  let kernels: WasmKernels;
  let ref: Kernels;
  beforeAll(async () => {
    heap = new Heap({ initialBytes: 32 * 2 ** 20 });
    kernels = await createWasmKernels(heap, { threads, spinMs: 5 });
    ref = createRefKernels(heap);
  });
  afterAll(async () => {
    await kernels?.dispose();
  });

  test.each(ops)("%s matches the reference", (op) => {
    let seed = 1;
    for (const n of sizes) {
      for (const alias of [false, true]) {
        if (alias && (op === "siluBackward" || op === "swigluBackward")) continue;
        const x = Array.from({ length: inputCount[op] }, (_, j) => random(n, seed++, j === 0 ? 12 : 3));
        const got = run(kernels, heap, op, x, alias);
        const want = run(ref, heap, op, x, alias);
        got.forEach((g, o) => {
          for (let i = 0; i < n; i++) {
            const tol = 4e-6 * magnitudes(op, x, i)[o] + 1e-30;
            const err = Math.abs(g[i] - want[o][i]);
            if (!(err <= tol)) {
              expect.fail(`${op} n=${n} alias=${alias} output ${o} [${i}] x=${x[0][i]}: got ${g[i]}, want ${want[o][i]}`);
            }
          }
        });
      }
    }
  });

  test("NaN inputs give NaN", () => {
    const a = heap.fromArray([Number.NaN, 1, Number.NaN, 2, Number.NaN]);
    const out = heap.tensor([5]);
    kernels.silu(out, a);
    expect(Number.isNaN(out.f32()[0]) && Number.isNaN(out.f32()[4])).toBe(true);
    expect(out.f32()[1]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
  });

  test("a partially overlapping output falls back to the reference", () => {
    const n = 100003;
    const base = random(n + 1, 77, 2);
    const t1 = heap.fromArray(base);
    const t2 = heap.fromArray(base);
    kernels.add(t1.view([n], 1), t1.view([n], 0), t1.view([n], 0));
    ref.add(t2.view([n], 1), t2.view([n], 0), t2.view([n], 0));
    expect(Array.from(t1.f32())).toEqual(Array.from(t2.f32()));
  });

  test("size mismatches throw naming the op", () => {
    expect(() => kernels.add(heap.tensor([3]), heap.tensor([3]), heap.tensor([4]))).toThrow(/add/);
  });
});
