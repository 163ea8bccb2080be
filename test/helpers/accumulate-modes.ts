// Checks of BackwardOptions.accumulate (kernels.ts) for one backward kernel call: the call is run
// three times on fresh gradient outputs,
//   zeroed:      outputs filled with 0, { accumulate: true }   -> exactly the added values v;
//   overwritten: outputs filled with NaN, { accumulate: false } -> must equal v (a read of the old
//                contents would leave NaN), compared as numbers (-0 == +0: 0 + (-0) is +0);
//   accumulated: outputs pre-filled with nonzero values P, no options (the default) -> P + v,
//                within the rounding of that one addition (the reference adds in f64 before
//                rounding to f32, so P + v may differ from fround(P + fround(v)) by an ulp).

import { expect } from "vitest";
import type { BackwardOptions } from "../../src/kernels/kernels.js";
import type { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { randomUniform } from "./random.js";

export interface AccumulateModes {
  zeroed: Float32Array[];
  overwritten: Float32Array[];
  accumulated: Float32Array[];
  prefill: Float32Array[];
}

/** Nonzero values: magnitudes in [0.25, 1.25), both signs. */
function nonzero(n: number, seed: number): Float32Array {
  return randomUniform(n, seed, 1).map((v) => Math.sign(v || 1) * (0.25 + Math.abs(v)));
}

/**
 * Runs `call` (a backward kernel with its inputs bound; `outs` are its flag-governed gradient
 * outputs, fresh tensors of the given shapes) in the three modes of the header.
 */
export function runAccumulateModes(
  heap: Heap,
  shapes: number[][],
  seed: number,
  call: (outs: Tensor[], options?: BackwardOptions) => void,
): AccumulateModes {
  const prefill = shapes.map((s, i) =>
    nonzero(
      s.reduce((a, b) => a * b, 1),
      seed + i,
    ),
  );
  const once = (
    fill: (i: number, t: Tensor) => void,
    options?: BackwardOptions,
  ): Float32Array[] => {
    const outs = shapes.map((s) => heap.tensor(s));
    outs.forEach((t, i) => {
      fill(i, t);
    });
    call(outs, options);
    const values = outs.map((t) => t.toArray());
    for (const t of outs) t.dispose();
    return values;
  };
  return {
    zeroed: once((_, t) => t.fill(0), { accumulate: true }),
    overwritten: once((_, t) => t.fill(Number.NaN), { accumulate: false }),
    accumulated: once((i, t) => t.f32().set(prefill[i])),
    prefill,
  };
}

/** got[i] === want[i] for every i (so NaN anywhere fails; -0 equals +0). */
export function expectSameNumbers(what: string, got: Float32Array, want: Float32Array): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    if (!(got[i] === want[i])) expect.fail(`${what} [${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

/** The checks of the header on the result of runAccumulateModes. */
export function expectAccumulateModes(what: string, r: AccumulateModes): void {
  r.zeroed.forEach((v, o) => {
    expectSameNumbers(
      `${what} output ${o}: accumulate:false over NaN vs accumulate:true over 0`,
      r.overwritten[o],
      v,
    );
    const got = r.accumulated[o];
    const p = r.prefill[o];
    for (let i = 0; i < v.length; i++) {
      const tol = 2.4e-7 * (Math.abs(p[i]) + Math.abs(v[i]));
      if (!(Math.abs(got[i] - (p[i] + v[i])) <= tol)) {
        expect.fail(
          `${what} output ${o} [${i}]: default accumulate onto ${p[i]} gave ${got[i]}, want ${p[i] + v[i]}`,
        );
      }
    }
  });
}
