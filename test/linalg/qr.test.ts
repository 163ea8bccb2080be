// Householder QR: identities Q^T Q = I, Q R = A, R upper triangular, on random, square,
// rank-deficient and zero inputs; orthonormalize agrees with qr().Q; errors name the shapes.

import { describe, expect, test } from "vitest";
import { orthonormalize, qr } from "../../src/linalg/qr.js";
import { matmul, orthonormalityError, Rng, randomMatrix } from "./linalg-helpers.js";

function checkQr(a: Float64Array, m: number, k: number): void {
  const { Q, R } = qr(a, m, k);
  expect(Q.length).toBe(m * k);
  expect(R.length).toBe(k * k);
  for (const x of Q) expect(Number.isFinite(x)).toBe(true);
  for (const x of R) expect(Number.isFinite(x)).toBe(true);
  expect(orthonormalityError(Q, m, k)).toBeLessThan(1e-13);
  for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) expect(R[i * k + j]).toBe(0);
  const qrProduct = matmul(Q, R, m, k, k);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < m * k; i++) {
    scale = Math.max(scale, Math.abs(a[i]));
    err = Math.max(err, Math.abs(qrProduct[i] - a[i]));
  }
  expect(err).toBeLessThanOrEqual(1e-13 * scale);
}

describe("qr", () => {
  const rng = new Rng(11);
  test.each([
    [1, 1],
    [5, 3],
    [6, 6],
    [64, 17],
    [200, 64],
    [33, 1],
  ])("random %i x %i", (m, k) => {
    checkQr(randomMatrix(rng, m, k), m, k);
  });

  test("rank-deficient: repeated and zero columns give no NaN and exact identities", () => {
    const m = 10;
    const k = 6;
    const a = randomMatrix(rng, m, k);
    for (let r = 0; r < m; r++) {
      a[r * k + 2] = a[r * k + 0]; // duplicate of column 0
      a[r * k + 3] = 0; // zero column
      a[r * k + 5] = 2 * a[r * k + 1] - a[r * k + 4]; // combination
    }
    checkQr(a, m, k);
    const { R } = qr(a, m, k);
    expect(Math.abs(R[2 * k + 2])).toBeLessThan(1e-12);
    expect(Math.abs(R[3 * k + 3])).toBe(0);
  });

  test("zero matrix: Q orthonormal, R = 0", () => {
    const { Q, R } = qr(new Float64Array(12), 4, 3);
    expect(orthonormalityError(Q, 4, 3)).toBeLessThan(1e-15);
    for (const x of R) expect(x).toBe(0);
  });

  test("scaling extremes do not overflow or underflow", () => {
    for (const scale of [1e-200, 1e200]) {
      const a = randomMatrix(rng, 8, 4).map((x) => x * scale);
      checkQr(a, 8, 4);
    }
  });

  test("Float32Array input and orthonormalize == qr().Q", () => {
    const a = Float32Array.from(randomMatrix(rng, 30, 7));
    checkQr(Float64Array.from(a), 30, 7);
    expect(Array.from(orthonormalize(a, 30, 7))).toEqual(Array.from(qr(a, 30, 7).Q));
  });

  test("errors name the shape", () => {
    expect(() => qr(new Float64Array(6), 2, 3)).toThrow(/tall.*m=2, k=3/);
    expect(() => qr(new Float64Array(5), 3, 2)).toThrow(/5 values.*\(3, 2\)/);
    expect(() => orthonormalize(new Float64Array(0), 0, 0)).toThrow(/positive integers/);
  });
});
