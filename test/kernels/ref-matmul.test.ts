// Reference GEMM vs a direct triple loop written here, over every transpose combination, batched
// and shared b, accumulate and alpha, on awkward sizes (1, primes).

import { describe, expect, test } from "vitest";
import { matmul } from "../../src/kernels/ref/matmul.js";
import { expectAllclose } from "../helpers/allclose.js";
import { makeRng, randn } from "../helpers/gradcheck.js";

interface Case {
  batch: number;
  m: number;
  n: number;
  k: number;
  bBatched: boolean;
}

/** out[b,i,j] = alpha * sum_p A[b,i,p] B[b,p,j] (+ old), reading a/b through their stored layout. */
function naive(
  old: Float64Array,
  a: Float64Array,
  b: Float64Array,
  c: Case,
  transA: boolean,
  transB: boolean,
  accumulate: boolean,
  alpha: number,
): Float64Array {
  const { batch, m, n, k } = c;
  const out = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[bi * k * m + p * m + i] : a[bi * m * k + i * k + p];
          const bOff = c.bBatched ? bi * k * n : 0;
          const bv = transB ? b[bOff + j * k + p] : b[bOff + p * n + j];
          s += av * bv;
        }
        const o = (bi * m + i) * n + j;
        out[o] = alpha * s + (accumulate ? old[o] : 0);
      }
    }
  }
  return out;
}

const cases: Case[] = [
  { batch: 1, m: 1, n: 1, k: 1, bBatched: false },
  { batch: 1, m: 3, n: 5, k: 7, bBatched: false },
  { batch: 2, m: 13, n: 1, k: 11, bBatched: true },
  { batch: 3, m: 5, n: 17, k: 2, bBatched: false },
  { batch: 2, m: 1, n: 7, k: 19, bBatched: true },
];

describe("ref matmul", () => {
  const rng = makeRng(1234);
  for (const c of cases) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        test(`${JSON.stringify(c)} transA=${transA} transB=${transB}`, () => {
          const a = randn(rng, c.batch * c.m * c.k);
          const b = randn(rng, (c.bBatched ? c.batch : 1) * c.k * c.n);
          const old = randn(rng, c.batch * c.m * c.n);
          for (const [accumulate, alpha] of [
            [false, 1],
            [true, 1],
            [false, -0.5],
            [true, 2.5],
          ] as const) {
            const out = old.slice();
            matmul(out, a, b, { ...c, transA, transB, accumulate, alpha });
            const expected = naive(old, a, b, c, transA, transB, accumulate, alpha);
            expectAllclose(out, expected, {
              rtol: 1e-12,
              atol: 1e-12,
              label: `acc=${accumulate} alpha=${alpha}`,
            });
          }
        });
      }
    }
  }

  test("float32 buffers give the float32-rounded float64 result", () => {
    const c: Case = { batch: 1, m: 4, n: 6, k: 9, bBatched: false };
    const a = randn(rng, 36);
    const b = randn(rng, 54);
    const out = new Float32Array(24);
    matmul(out, Float32Array.from(a), Float32Array.from(b), {
      ...c,
      transA: false,
      transB: true,
      accumulate: false,
      alpha: 1,
    });
    const expected = naive(
      new Float64Array(24),
      Float64Array.from(Float32Array.from(a)),
      Float64Array.from(Float32Array.from(b)),
      c,
      false,
      true,
      false,
      1,
    );
    expectAllclose(out, Float32Array.from(expected), { rtol: 0, atol: 0 });
  });

  test("propagates NaN and Inf like a plain product (0 * Inf = NaN)", () => {
    const out = new Float64Array(1);
    matmul(out, Float64Array.of(0, 1), Float64Array.of(Infinity, 1), {
      batch: 1,
      m: 1,
      n: 1,
      k: 2,
      bBatched: false,
      transA: false,
      transB: false,
      accumulate: false,
      alpha: 1,
    });
    expect(Number.isNaN(out[0])).toBe(true);
  });
});
