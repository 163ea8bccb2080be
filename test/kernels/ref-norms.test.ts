// Reference RMSNorm and LayerNorm: forward vs direct definitions (row mean/variance identities),
// backward vs central finite differences in float64 for dInp, dWeight and dBias, accumulating
// into non-zero buffers; null weight gradients are skipped.

import { describe, expect, test } from "vitest";
import {
  layernorm,
  layernormBackward,
  rmsnorm,
  rmsnormBackward,
} from "../../src/kernels/ref/norms.js";
import { expectAllclose } from "../helpers/allclose.js";
import { dot, makeRng, numericalGradient, randn } from "../helpers/gradcheck.js";

const rng = makeRng(7);
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 5],
  [3, 7],
  [4, 13],
];
const minus = (a: Float64Array, b: Float64Array) => a.map((v, i) => v - b[i]);

describe("ref rmsnorm", () => {
  test("forward: out = x / sqrt(mean(x^2) + eps) * w", () => {
    const [rows, cols] = [3, 11];
    const x = randn(rng, rows * cols);
    const w = randn(rng, cols);
    const out = new Float64Array(rows * cols);
    const rstd = new Float64Array(rows);
    rmsnorm(out, rstd, x, w, 1e-5, rows, cols);
    for (let r = 0; r < rows; r++) {
      let ms = 0;
      for (let c = 0; c < cols; c++) ms += x[r * cols + c] ** 2 / cols;
      expect(rstd[r]).toBeCloseTo(1 / Math.sqrt(ms + 1e-5), 12);
      for (let c = 0; c < cols; c++) {
        expect(out[r * cols + c]).toBeCloseTo((x[r * cols + c] / Math.sqrt(ms + 1e-5)) * w[c], 12);
      }
    }
  });

  for (const [rows, cols] of SHAPES) {
    test(`backward (${rows}, ${cols}) vs finite differences`, () => {
      const eps = 1e-6;
      const x = randn(rng, rows * cols);
      const w = randn(rng, cols);
      const dOut = randn(rng, rows * cols);
      const out = new Float64Array(rows * cols);
      const rstd = new Float64Array(rows);
      const loss = (xx: Float64Array, ww: Float64Array) => {
        rmsnorm(out, rstd, xx, ww, eps, rows, cols);
        return dot(out, dOut);
      };
      loss(x, w);
      const dx0 = randn(rng, rows * cols);
      const dw0 = randn(rng, cols);
      const dx = dx0.slice();
      const dw = dw0.slice();
      rmsnormBackward(dx, dw, dOut, x, w, rstd, rows, cols);
      expectAllclose(
        minus(dx, dx0),
        numericalGradient((xx) => loss(xx, w), x),
        { rtol: 1e-6, atol: 1e-7, label: "dInp" },
      );
      expectAllclose(
        minus(dw, dw0),
        numericalGradient((ww) => loss(x, ww), w),
        { rtol: 1e-6, atol: 1e-7, label: "dWeight" },
      );
      const dxOnly = dx0.slice();
      rmsnormBackward(dxOnly, null, dOut, x, w, rstd, rows, cols);
      expectAllclose(dxOnly, dx, { rtol: 0, atol: 0, label: "dInp without dWeight" });
    });
  }
});

describe("ref layernorm", () => {
  test("forward: rows normalised to mean 0, biased variance 1 - eps-ish; saved mean/rstd", () => {
    const [rows, cols] = [4, 9];
    const x = randn(rng, rows * cols, 3).map((v) => v + 5);
    const ones = new Float64Array(cols).fill(1);
    const zeros = new Float64Array(cols);
    const out = new Float64Array(rows * cols);
    const mean = new Float64Array(rows);
    const rstd = new Float64Array(rows);
    const eps = 1e-5;
    layernorm(out, mean, rstd, x, ones, zeros, eps, rows, cols);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
      const mu = row.reduce((s, v) => s + v, 0) / cols;
      const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / cols;
      expect(mean[r]).toBeCloseTo(mu, 12);
      expect(rstd[r]).toBeCloseTo(1 / Math.sqrt(variance + eps), 12);
      const o = Array.from(out.subarray(r * cols, (r + 1) * cols));
      expect(o.reduce((s, v) => s + v, 0) / cols).toBeCloseTo(0, 12);
      expect(o.reduce((s, v) => s + v * v, 0) / cols).toBeCloseTo(variance / (variance + eps), 12);
    }
    const w = randn(rng, cols);
    const b = randn(rng, cols);
    const out2 = new Float64Array(rows * cols);
    layernorm(out2, mean, rstd, x, w, b, eps, rows, cols);
    expectAllclose(
      out2,
      out.map((v, i) => v * w[i % cols] + b[i % cols]),
      { rtol: 1e-13, atol: 1e-13, label: "affine" },
    );
  });

  for (const [rows, cols] of SHAPES) {
    test(`backward (${rows}, ${cols}) vs finite differences`, () => {
      const eps = 1e-5;
      const x = randn(rng, rows * cols);
      const w = randn(rng, cols);
      const b = randn(rng, cols);
      const dOut = randn(rng, rows * cols);
      const out = new Float64Array(rows * cols);
      const mean = new Float64Array(rows);
      const rstd = new Float64Array(rows);
      const loss = (xx: Float64Array, ww: Float64Array, bb: Float64Array) => {
        layernorm(out, mean, rstd, xx, ww, bb, eps, rows, cols);
        return dot(out, dOut);
      };
      loss(x, w, b);
      const dx0 = randn(rng, rows * cols);
      const dw0 = randn(rng, cols);
      const db0 = randn(rng, cols);
      const dx = dx0.slice();
      const dw = dw0.slice();
      const db = db0.slice();
      layernormBackward(dx, dw, db, dOut, x, w, mean, rstd, rows, cols);
      // cols = 1: the output is exactly the bias, dInp is 0 and finite differences see that too.
      expectAllclose(
        minus(dx, dx0),
        numericalGradient((xx) => loss(xx, w, b), x),
        { rtol: 1e-6, atol: 1e-6, label: "dInp" },
      );
      expectAllclose(
        minus(dw, dw0),
        numericalGradient((ww) => loss(x, ww, b), w),
        { rtol: 1e-6, atol: 1e-7, label: "dWeight" },
      );
      expectAllclose(
        minus(db, db0),
        numericalGradient((bb) => loss(x, w, bb), b),
        { rtol: 1e-6, atol: 1e-7, label: "dBias" },
      );
      const dxOnly = dx0.slice();
      layernormBackward(dxOnly, null, null, dOut, x, w, mean, rstd, rows, cols);
      expectAllclose(dxOnly, dx, { rtol: 0, atol: 0, label: "dInp without dWeight/dBias" });
    });
  }
});
