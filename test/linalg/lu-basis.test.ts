// LU basis (P^T L of a partially pivoted LU): same span as the input, entries bounded by 1 with a
// unit entry per column, full column rank even for rank-deficient input.

import { describe, expect, test } from "vitest";
import { luBasisColumnsInPlace } from "../../src/linalg/lu-basis.js";
import { fromColumnMajor, orthonormalize, toColumnMajor } from "../../src/linalg/qr.js";
import { svdJacobi } from "../../src/linalg/svd.js";
import { Rng, randomMatrix, sinAngleBound } from "./linalg-helpers.js";

function luBasis(a: Float64Array, m: number, k: number): Float64Array {
  const cols = toColumnMajor(a, m, k);
  luBasisColumnsInPlace(cols, m, k);
  return fromColumnMajor(cols, m, k); // (m, k) row-major
}

describe("luBasisColumnsInPlace", () => {
  const rng = new Rng(21);
  test.each([
    [1, 1],
    [7, 3],
    [50, 50],
    [200, 37],
  ])("%i x %i: same span, |entries| <= 1 with a unit entry per column", (m, k) => {
    const a = randomMatrix(rng, m, k);
    const l = luBasis(a, m, k);
    expect(sinAngleBound(orthonormalize(a, m, k), orthonormalize(l, m, k), m, k)).toBeLessThan(
      1e-11,
    );
    for (let c = 0; c < k; c++) {
      let max = 0;
      for (let r = 0; r < m; r++) max = Math.max(max, Math.abs(l[r * k + c]));
      expect(max).toBe(1);
    }
  });

  test("rank-deficient input: finite, full column rank", () => {
    const m = 12;
    const k = 5;
    const a = randomMatrix(rng, m, k);
    for (let r = 0; r < m; r++) {
      a[r * k + 1] = 3 * a[r * k + 0];
      a[r * k + 4] = 0;
    }
    const l = luBasis(a, m, k);
    for (const x of l) expect(Number.isFinite(x)).toBe(true);
    const s = svdJacobi(l, m, k).S;
    expect(s[k - 1]).toBeGreaterThan(1e-3);
    // span(L) contains span(A)
    const ql = orthonormalize(l, m, k);
    // the rank-3 column space of A: its first 3 left singular vectors
    const ua = svdJacobi(a, m, k);
    const u3 = new Float64Array(m * 3);
    for (let r = 0; r < m; r++) for (let c = 0; c < 3; c++) u3[r * 3 + c] = ua.U[r * k + c];
    let residual = 0;
    for (let c = 0; c < 3; c++) {
      const col = Array.from({ length: m }, (_, r) => u3[r * 3 + c]);
      const proj = new Float64Array(m);
      for (let j = 0; j < k; j++) {
        let dot = 0;
        for (let r = 0; r < m; r++) dot += ql[r * k + j] * col[r];
        for (let r = 0; r < m; r++) proj[r] += dot * ql[r * k + j];
      }
      for (let r = 0; r < m; r++) residual = Math.max(residual, Math.abs(proj[r] - col[r]));
    }
    expect(residual).toBeLessThan(1e-12);
  });

  test("m < k throws", () => {
    expect(() => luBasisColumnsInPlace(new Float64Array(6), 2, 3)).toThrow(/m >= k/);
  });
});
