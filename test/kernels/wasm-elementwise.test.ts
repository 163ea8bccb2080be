// wasm elementwise kernels (add, mul, scale, axpy, silu, swiglu and backwards) vs the reference:
// sizes around the 4-lane vectors and the 16384-element chunks, 1 and 2 threads, values including
// large magnitudes (exp clamping), an output that is an input, and a partially overlapping output
// (which must fall back to the reference and still be right). The backwards' BackwardOptions:
// accumulate: false over NaN equals accumulate: true over zeros, and the default still adds
// (test/helpers/accumulate-modes.ts), for wasm and ref, in place too, and through the reference
// fallback.
// Tolerance: the SIMD exp has relative error ~1e-7 and f32 rounding differs from the f64-evaluated
// reference by a few ulps, so |got - want| <= 4e-6 * (sum of the magnitudes of the terms) + 1e-30.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { BackwardOptions, Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWasmKernels, type WasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import {
  expectAccumulateModes,
  expectSameNumbers,
  runAccumulateModes,
} from "../helpers/accumulate-modes.js";
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
const ops: Op[] = [
  "add",
  "mul",
  "scale",
  "axpy",
  "silu",
  "siluBackward",
  "swiglu",
  "swigluBackward",
];
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
        const x = Array.from({ length: inputCount[op] }, (_, j) =>
          random(n, seed++, j === 0 ? 12 : 3),
        );
        const got = run(kernels, heap, op, x, alias);
        const want = run(ref, heap, op, x, alias);
        got.forEach((g, o) => {
          for (let i = 0; i < n; i++) {
            const tol = 4e-6 * magnitudes(op, x, i)[o] + 1e-30;
            const err = Math.abs(g[i] - want[o][i]);
            if (!(err <= tol)) {
              expect.fail(
                `${op} n=${n} alias=${alias} output ${o} [${i}] x=${x[0][i]}: got ${g[i]}, want ${want[o][i]}`,
              );
            }
          }
        });
      }
    }
  });

  // the backwards under BackwardOptions; gelu has no wasm port (the wasm kernels delegate it)
  type Backward = "siluBackward" | "swigluBackward" | "geluBackward none" | "geluBackward tanh";
  const backwards: Backward[] = [
    "siluBackward",
    "swigluBackward",
    "geluBackward none",
    "geluBackward tanh",
  ];
  /** Calls `op` on gradient outputs `outs` and inputs x: inp/gate = x[0], dOut = x[1] (swiglu: up = x[1], dOut = x[2]). */
  function callBackward(
    k: Kernels,
    op: Backward,
    outs: Tensor[],
    x: Tensor[],
    options?: BackwardOptions,
  ): void {
    if (op === "siluBackward") k.siluBackward(outs[0], x[0], x[1], options);
    else if (op === "swigluBackward") k.swigluBackward(outs[0], outs[1], x[0], x[1], x[2], options);
    else k.geluBackward(outs[0], x[0], x[1], op === "geluBackward none" ? "none" : "tanh", options);
  }

  test.each(backwards)("%s: accumulate false overwrites, the default accumulates", (op) => {
    let seed = 500;
    const outputs = op === "swigluBackward" ? 2 : 1;
    for (const n of [1, 5, 17, 16385, 65536 + 5]) {
      const x = Array.from({ length: op === "swigluBackward" ? 3 : 2 }, (_, j) =>
        random(n, seed++, j === 0 ? 12 : 3),
      );
      const inputs = x.map((v) => heap.fromArray(v));
      const [got, want] = [kernels, ref].map((k) => {
        const shapes = Array.from({ length: outputs }, () => [n]);
        const r = runAccumulateModes(heap, shapes, seed, (outs, options) =>
          callBackward(k, op, outs, inputs, options),
        );
        expectAccumulateModes(`${k.name} ${op} n=${n}`, r);
        return r.overwritten;
      });
      // across implementations: the tolerance of the test above, without a prefill term
      got.forEach((g, o) => {
        for (let i = 0; i < n; i++) {
          const [a, b, c] = x.map((v) => Math.abs(v[i]));
          const mag = op === "swigluBackward" ? [c * b * (1 + a), c * a][o] : b * (1 + a);
          if (!(Math.abs(g[i] - want[o][i]) <= 4e-6 * mag + 1e-30)) {
            expect.fail(`${op} n=${n} output ${o} [${i}]: wasm ${g[i]}, ref ${want[o][i]}`);
          }
        }
      });
      for (const t of inputs) t.dispose();
    }
  });

  test.each(backwards)(
    "%s with accumulate false in place (gradient written over its input)",
    (op) => {
      const n = 16385;
      const x = [random(n, 31, 12), random(n, 32, 3), random(n, 33, 3)];
      for (const k of [kernels, ref]) {
        const inputs = x.map((v) => heap.fromArray(v));
        const outs = [heap.tensor([n]).fill(0), heap.tensor([n]).fill(0)];
        callBackward(k, op, outs, inputs, { accumulate: true });
        // silu, gelu: dInp is dOut's buffer; swiglu: dGate is gate's, dUp is up's
        const inPlace = op === "swigluBackward" ? [inputs[0], inputs[1]] : [inputs[1]];
        callBackward(k, op, inPlace, inputs, { accumulate: false });
        inPlace.forEach((t, o) => {
          expectSameNumbers(`${k.name} ${op} in place output ${o}`, t.f32(), outs[o].f32());
        });
        for (const t of [...inputs, ...outs]) t.dispose();
      }
    },
  );

  test.each(backwards)(
    "%s with accumulate false on a partially overlapping output: the reference's result",
    (op) => {
      // dInp (dGate) is dOut's buffer shifted by one element: the wasm kernels hand it to the
      // reference, which must get the flag
      const n = 70001;
      const x = [random(n, 41, 12), random(n, 42, 3), random(n + 1, 43, 3)];
      const [got, want] = [kernels, ref].map((k) => {
        const [a, b, buf] = x.map((v) => heap.fromArray(v));
        const dOut = buf.view([n], 0);
        const dUp = heap.tensor([n]).fill(Number.NaN);
        const inputs = op === "swigluBackward" ? [a, b, dOut] : [a, dOut];
        callBackward(k, op, [buf.view([n], 1), dUp], inputs, { accumulate: false });
        const r = [buf.toArray(), dUp.toArray()];
        for (const t of [a, b, buf, dUp]) t.dispose();
        return r;
      });
      expect(Array.from(got[0])).toEqual(Array.from(want[0]));
      if (op === "swigluBackward") expect(Array.from(got[1])).toEqual(Array.from(want[1]));
    },
  );

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
