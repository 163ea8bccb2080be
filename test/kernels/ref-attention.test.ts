// Reference attention softmax (mask rules, row sums, backward by finite differences), rotary
// embedding (rotation identities, backward by finite differences) and permute0213.

import { describe, expect, test } from "vitest";
import { attentionSoftmax, attentionSoftmaxBackward } from "../../src/kernels/ref/attention.js";
import { permute0213 } from "../../src/kernels/ref/permute.js";
import { rope, ropeBackward } from "../../src/kernels/ref/rope.js";
import { expectAllclose } from "../helpers/allclose.js";
import { dot, makeRng, numericalGradient, randn, uniform } from "../helpers/gradcheck.js";

const rng = makeRng(99);
const minus = (a: Float64Array, b: Float64Array) => a.map((v, i) => v - b[i]);

describe("ref attentionSoftmax", () => {
  const cases = [
    { batch: 1, heads: 1, tq: 1, tk: 1, causal: true, keyLengths: null },
    { batch: 2, heads: 3, tq: 5, tk: 5, causal: true, keyLengths: null },
    { batch: 2, heads: 2, tq: 3, tk: 7, causal: true, keyLengths: Int32Array.of(7, 4) },
    { batch: 3, heads: 1, tq: 4, tk: 4, causal: false, keyLengths: Int32Array.of(4, 1, 0) },
    { batch: 1, heads: 2, tq: 2, tk: 11, causal: false, keyLengths: null },
  ];
  for (const c of cases) {
    const dims = { batch: c.batch, heads: c.heads, tq: c.tq, tk: c.tk };
    const n = c.batch * c.heads * c.tq * c.tk;
    const label = `B=${c.batch} H=${c.heads} Tq=${c.tq} Tk=${c.tk} causal=${c.causal} keyLengths=${c.keyLengths}`;
    const visible = (b: number, i: number, j: number) =>
      (!c.causal || j <= i + c.tk - c.tq) && (c.keyLengths === null || j < c.keyLengths[b]);

    test(`forward ${label}`, () => {
      const scale = 0.37;
      const scores = randn(rng, n, 3);
      const probs = new Float64Array(n);
      attentionSoftmax(probs, scores, dims, scale, c.causal, c.keyLengths);
      for (let b = 0; b < c.batch; b++) {
        for (let h = 0; h < c.heads; h++) {
          for (let i = 0; i < c.tq; i++) {
            const row = ((b * c.heads + h) * c.tq + i) * c.tk;
            // direct definition: exp(scale s_j) / sum over visible keys
            let denom = 0;
            for (let j = 0; j < c.tk; j++)
              if (visible(b, i, j)) denom += Math.exp(scale * scores[row + j]);
            let total = 0;
            for (let j = 0; j < c.tk; j++) {
              const expected = visible(b, i, j) ? Math.exp(scale * scores[row + j]) / denom : 0;
              expect(probs[row + j]).toBeCloseTo(expected, 14);
              total += probs[row + j];
            }
            expect(total).toBeCloseTo(denom > 0 ? 1 : 0, 14);
          }
        }
      }
      // in place (probs aliasing scores) gives the same result
      const inPlace = scores.slice();
      attentionSoftmax(inPlace, inPlace, dims, scale, c.causal, c.keyLengths);
      expectAllclose(inPlace, probs, { rtol: 0, atol: 0, label: "in place" });
    });

    test(`backward ${label} vs finite differences`, () => {
      const scale = 0.81;
      const scores = randn(rng, n);
      const dProbs = randn(rng, n);
      const probs = new Float64Array(n);
      attentionSoftmax(probs, scores, dims, scale, c.causal, c.keyLengths);
      const d0 = randn(rng, n);
      const dScores = d0.slice();
      attentionSoftmaxBackward(dScores, probs, dProbs, scale, n / c.tk, c.tk);
      const tmp = new Float64Array(n);
      const numeric = numericalGradient((s) => {
        attentionSoftmax(tmp, s, dims, scale, c.causal, c.keyLengths);
        return dot(tmp, dProbs);
      }, scores);
      expectAllclose(minus(dScores, d0), numeric, { rtol: 1e-6, atol: 1e-8, label: "dScores" });
    });
  }

  test("large scores do not overflow", () => {
    const probs = new Float64Array(3);
    attentionSoftmax(
      probs,
      Float64Array.of(1000, 1000, -1000),
      { batch: 1, heads: 1, tq: 1, tk: 3 },
      1,
      false,
      null,
    );
    expectAllclose(probs, [0.5, 0.5, 0], { rtol: 0, atol: 1e-300, label: "probs" });
  });
});

describe("ref rope", () => {
  const dims = { batch: 2, time: 3, heads: 3, headDim: 10 };
  const n = 2 * 3 * 3 * 10;
  const angles = uniform(rng, 3 * 5, -4, 4); // (T, D/2)
  const cos = angles.map(Math.cos);
  const sin = angles.map(Math.sin);

  test("forward rotates each (i, i + D/2) pair by its angle", () => {
    const x = randn(rng, n);
    const out = new Float64Array(n);
    rope(out, x, cos, sin, dims);
    for (let b = 0; b < 2; b++) {
      for (let t = 0; t < 3; t++) {
        for (let h = 0; h < 3; h++) {
          const base = ((b * 3 + t) * 3 + h) * 10;
          for (let i = 0; i < 5; i++) {
            // complex multiplication (x_i + i x_{i+5}) * e^{i theta}
            const re = x[base + i];
            const im = x[base + i + 5];
            const th = angles[t * 5 + i];
            expect(out[base + i]).toBeCloseTo(re * Math.cos(th) - im * Math.sin(th), 14);
            expect(out[base + i + 5]).toBeCloseTo(im * Math.cos(th) + re * Math.sin(th), 14);
          }
        }
      }
    }
    const inPlace = x.slice();
    rope(inPlace, inPlace, cos, sin, dims);
    expectAllclose(inPlace, out, { rtol: 0, atol: 0, label: "in place" });
    // backward of a rotation is its inverse: applying it to out recovers x
    const back = new Float64Array(n);
    ropeBackward(back, out, cos, sin, dims);
    expectAllclose(back, x, { rtol: 1e-13, atol: 1e-13, label: "inverse" });
  });

  test("backward vs finite differences", () => {
    const x = randn(rng, n);
    const dOut = randn(rng, n);
    const d0 = randn(rng, n);
    const dInp = d0.slice();
    ropeBackward(dInp, dOut, cos, sin, dims);
    const out = new Float64Array(n);
    const numeric = numericalGradient((xx) => {
      rope(out, xx, cos, sin, dims);
      return dot(out, dOut);
    }, x);
    expectAllclose(minus(dInp, d0), numeric, { rtol: 1e-7, atol: 1e-9, label: "dInp" });
  });
});

describe("ref permute0213", () => {
  test("out[a, c, b, d] = inp[a, b, c, d], and applying it twice is the identity", () => {
    const [A, B, C, D] = [2, 3, 5, 1];
    const inp = randn(rng, A * B * C * D);
    const out = new Float64Array(inp.length);
    permute0213(out, inp, { a: A, b: B, c: C, d: D });
    for (let a = 0; a < A; a++)
      for (let b = 0; b < B; b++)
        for (let c = 0; c < C; c++)
          for (let d = 0; d < D; d++) {
            expect(out[((a * C + c) * B + b) * D + d]).toBe(inp[((a * B + b) * C + c) * D + d]);
          }
    const back = new Float64Array(inp.length);
    permute0213(back, out, { a: A, b: C, c: B, d: D });
    expectAllclose(back, inp, { rtol: 0, atol: 0, label: "round trip" });
  });
});
