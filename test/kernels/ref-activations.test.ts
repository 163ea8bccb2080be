// Reference elementwise ops and activations: forwards vs PyTorch float64 values (fixture from
// scripts/fixtures/make_activations.py) or direct definitions; every backward vs central finite
// differences in float64, starting from a non-zero gradient buffer to check accumulation.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import * as act from "../../src/kernels/ref/activations.js";
import * as ew from "../../src/kernels/ref/elementwise.js";
import { expectAllclose } from "../helpers/allclose.js";
import { dot, makeRng, numericalGradient, randn } from "../helpers/gradcheck.js";

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/activations.json", import.meta.url), "utf8"),
) as {
  x: number[];
  erf: number[];
  silu: number[];
  gelu: number[];
  gelu_tanh: number[];
};

const rng = makeRng(42);
const SIZES = [1, 7, 31];

/** analytic - numerical for dInp of L = <forward(x), dOut>, the backward starting from g0. */
function gradcheckUnary(
  forward: (out: Float64Array, x: Float64Array) => void,
  backward: (dInp: Float64Array, x: Float64Array, dOut: Float64Array) => void,
  n: number,
  label: string,
): void {
  const x = randn(rng, n, 2);
  const dOut = randn(rng, n);
  const g0 = randn(rng, n);
  const dInp = g0.slice();
  backward(dInp, x, dOut);
  for (let i = 0; i < n; i++) dInp[i] -= g0[i];
  const out = new Float64Array(n);
  const numeric = numericalGradient((xx) => {
    forward(out, xx);
    return dot(out, dOut);
  }, x);
  expectAllclose(dInp, numeric, { rtol: 1e-6, atol: 1e-8, label });
}

describe("ref activations forward", () => {
  test("erf matches torch.erf", () => {
    const got = fixture.x.map(act.erf);
    expectAllclose(got, fixture.erf, { rtol: 2e-15, atol: 1e-16, label: "erf" });
    expect(act.erf(-0)).toBe(-0);
    expect(Number.isNaN(act.erf(Number.NaN))).toBe(true);
  });
  for (const [name, fn, expected] of [
    ["silu", (o: Float64Array, x: Float64Array) => act.silu(o, x), fixture.silu],
    ["gelu", (o: Float64Array, x: Float64Array) => act.gelu(o, x, "none"), fixture.gelu],
    ["gelu tanh", (o: Float64Array, x: Float64Array) => act.gelu(o, x, "tanh"), fixture.gelu_tanh],
  ] as const) {
    test(`${name} matches the float64 reference`, () => {
      const x = Float64Array.from(fixture.x);
      const out = new Float64Array(x.length);
      fn(out, x);
      // exp(-x^2) at x = -30 carries the rounding of x^2 (relative 1e-13)
      expectAllclose(out, expected, { rtol: 1e-12, atol: 1e-300, label: name });
    });
  }
  test("swiglu = silu(gate) * up, in place allowed", () => {
    const gate = randn(rng, 13);
    const up = randn(rng, 13);
    const expected = Array.from(gate, (g, i) => (g / (1 + Math.exp(-g))) * up[i]);
    const out = gate.slice();
    act.swiglu(out, out, up);
    expectAllclose(out, expected, { rtol: 1e-15, atol: 0, label: "swiglu" });
  });
});

describe("ref activations backward (finite differences, float64)", () => {
  for (const n of SIZES) {
    test(`silu n=${n}`, () => gradcheckUnary(act.silu, act.siluBackward, n, "silu"));
    test(`gelu n=${n}`, () =>
      gradcheckUnary(
        (o, x) => act.gelu(o, x, "none"),
        (d, x, dy) => act.geluBackward(d, x, dy, "none"),
        n,
        "gelu",
      ));
    test(`gelu tanh n=${n}`, () =>
      gradcheckUnary(
        (o, x) => act.gelu(o, x, "tanh"),
        (d, x, dy) => act.geluBackward(d, x, dy, "tanh"),
        n,
        "gelu tanh",
      ));
    test(`swiglu n=${n}`, () => {
      const gate = randn(rng, n, 2);
      const up = randn(rng, n, 2);
      const dOut = randn(rng, n);
      const g0 = randn(rng, n);
      const u0 = randn(rng, n);
      const dGate = g0.slice();
      const dUp = u0.slice();
      act.swigluBackward(dGate, dUp, gate, up, dOut);
      const out = new Float64Array(n);
      const numGate = numericalGradient((g) => {
        act.swiglu(out, g, up);
        return dot(out, dOut);
      }, gate);
      const numUp = numericalGradient((u) => {
        act.swiglu(out, gate, u);
        return dot(out, dOut);
      }, up);
      expectAllclose(
        dGate.map((v, i) => v - g0[i]),
        numGate,
        { rtol: 1e-6, atol: 1e-8, label: "dGate" },
      );
      expectAllclose(
        dUp.map((v, i) => v - u0[i]),
        numUp,
        { rtol: 1e-6, atol: 1e-8, label: "dUp" },
      );
    });
  }
});

describe("ref elementwise", () => {
  test("add, mul, scale, axpy", () => {
    const a = randn(rng, 11);
    const b = randn(rng, 11);
    const out = new Float64Array(11);
    ew.add(out, a, b);
    expectAllclose(
      out,
      Array.from(a, (v, i) => v + b[i]),
      { rtol: 0, atol: 0, label: "add" },
    );
    ew.mul(out, a, b);
    expectAllclose(
      out,
      Array.from(a, (v, i) => v * b[i]),
      { rtol: 0, atol: 0, label: "mul" },
    );
    ew.scale(out, a, -3);
    expectAllclose(
      out,
      Array.from(a, (v) => -3 * v),
      { rtol: 0, atol: 0, label: "scale" },
    );
    const acc = b.slice();
    ew.axpy(acc, a, 0.5);
    expectAllclose(
      acc,
      Array.from(a, (v, i) => b[i] + 0.5 * v),
      { rtol: 0, atol: 0, label: "axpy" },
    );
  });

  test("addBias and its backward (finite differences)", () => {
    const rows = 5;
    const cols = 3;
    const x = randn(rng, rows * cols);
    const bias = randn(rng, cols);
    const out = x.slice();
    ew.addBias(out, bias, rows, cols);
    expectAllclose(
      out,
      Array.from(x, (v, i) => v + bias[i % cols]),
      { rtol: 0, atol: 0, label: "addBias" },
    );
    const dOut = randn(rng, rows * cols);
    const b0 = randn(rng, cols);
    const dBias = b0.slice();
    ew.biasBackward(dBias, dOut, rows, cols);
    const numeric = numericalGradient((bb) => {
      const o = x.slice();
      ew.addBias(o, bb, rows, cols);
      return dot(o, dOut);
    }, bias);
    expectAllclose(
      dBias.map((v, i) => v - b0[i]),
      numeric,
      { rtol: 1e-7, atol: 1e-9, label: "dBias" },
    );
  });
});
