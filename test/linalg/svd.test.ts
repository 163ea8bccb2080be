// Exact one-sided Jacobi SVD: against numpy.linalg.svd (fixture from
// scripts/fixtures/make_svd_cases.py) and the identities A = U S V^T, U^T U = I, V^T V = I,
// S descending; plus canonicalizeSigns and the principal-angle helper.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import {
  canonicalizeSigns,
  maxPrincipalAngleDegrees,
  type Svd,
  svdJacobi,
} from "../../src/linalg/svd.js";
import { nonEmpty } from "../helpers/fixture-cases.js";
import {
  columns,
  maxDiffUpToColumnSign,
  orthonormalityError,
  Rng,
  randomMatrix,
  randomOrthonormal,
  reconstructionError,
  withSpectrum,
} from "./linalg-helpers.js";

interface ExactCase {
  name: string;
  m: number;
  n: number;
  a: number[];
  s: number[];
  kVectors: number;
  u: number[];
  v: number[];
}
const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/svd_cases.json", import.meta.url), "utf8"),
) as { exact: ExactCase[] };

function checkSvd(svd: Svd, a: ArrayLike<number>, tol: number): void {
  const { m, n, k, U, S, V } = svd;
  expect(k).toBe(Math.min(m, n));
  expect(orthonormalityError(U, m, k)).toBeLessThan(tol);
  expect(orthonormalityError(V, n, k)).toBeLessThan(tol);
  expect(reconstructionError(a, U, S, V, m, n, k)).toBeLessThan(tol);
  for (let i = 1; i < k; i++) expect(S[i]).toBeLessThanOrEqual(S[i - 1]);
  for (const s of S) expect(s).toBeGreaterThanOrEqual(0);
}

describe("svdJacobi vs numpy", () => {
  test.each(nonEmpty(fixture.exact, "svd_cases.json exact"))("$name", (c) => {
    const svd = svdJacobi(c.a, c.m, c.n);
    checkSvd(svd, c.a, 1e-13);
    for (let i = 0; i < svd.k; i++)
      expect(Math.abs(svd.S[i] - c.s[i])).toBeLessThan(1e-13 * c.s[0]);
    const kv = c.kVectors;
    expect(maxDiffUpToColumnSign(columns(svd.U, c.m, svd.k, kv), c.u, c.m, kv)).toBeLessThan(1e-11);
    expect(maxDiffUpToColumnSign(columns(svd.V, c.n, svd.k, kv), c.v, c.n, kv)).toBeLessThan(1e-11);
  });
});

describe("svdJacobi identities", () => {
  const rng = new Rng(3);
  test.each([
    [60, 40],
    [40, 60],
    [50, 50],
    [1, 1],
    [3, 30],
  ])("random %i x %i", (m, n) => {
    const a = randomMatrix(rng, m, n);
    checkSvd(svdJacobi(a, m, n), a, 1e-12);
  });

  test("known spectrum with a wide dynamic range", () => {
    const m = 30;
    const n = 20;
    const k = 20;
    const s = Array.from({ length: k }, (_, i) => 10 ** (-i / 2)); // 1 .. 1e-9.5
    const a = withSpectrum(randomOrthonormal(rng, m, k), s, randomOrthonormal(rng, n, k), m, n, k);
    const svd = svdJacobi(a, m, n);
    checkSvd(svd, a, 1e-12);
    for (let i = 0; i < k; i++) expect(Math.abs(svd.S[i] - s[i])).toBeLessThan(1e-14);
  });

  test("zero and rank-deficient matrices: orthonormal bases, no NaN", () => {
    const zero = svdJacobi(new Float64Array(15), 5, 3);
    checkSvd(zero, new Float64Array(15), 1e-14);
    for (const s of zero.S) expect(s).toBe(0);
    const rankOne = withSpectrum(
      randomOrthonormal(rng, 9, 1),
      [2],
      randomOrthonormal(rng, 7, 1),
      9,
      7,
      1,
    );
    const svd = svdJacobi(rankOne, 9, 7);
    checkSvd(svd, rankOne, 1e-13);
    expect(Math.abs(svd.S[0] - 2)).toBeLessThan(1e-14);
    for (let i = 1; i < 7; i++) expect(svd.S[i]).toBeLessThan(1e-14);
  });

  test("rejects bad input with a clear message", () => {
    expect(() => svdJacobi([1, Number.NaN, 3, 4], 2, 2)).toThrow(/element 1 is NaN/);
    expect(() => svdJacobi([1, 2, 3], 2, 2)).toThrow(/3 values/);
  });
});

describe("canonicalizeSigns / maxPrincipalAngleDegrees", () => {
  const rng = new Rng(4);
  test("canonical signs: largest |u_i| entry positive, product unchanged, input untouched", () => {
    const a = randomMatrix(rng, 8, 5);
    const svd = svdJacobi(a, 8, 5);
    const flipped: Svd = { ...svd, U: svd.U.map((x) => -x), V: svd.V.map((x) => -x) };
    const c1 = canonicalizeSigns(svd);
    const c2 = canonicalizeSigns(flipped);
    expect(Array.from(c2.U)).toEqual(Array.from(c1.U));
    expect(Array.from(c2.V)).toEqual(Array.from(c1.V));
    expect(flipped.U[0]).toBe(-svd.U[0]);
    for (let j = 0; j < 5; j++) {
      let best = 0;
      for (let i = 0; i < 8; i++)
        if (Math.abs(c1.U[i * 5 + j]) > Math.abs(best)) best = c1.U[i * 5 + j];
      expect(best).toBeGreaterThan(0);
    }
    expect(reconstructionError(a, c1.U, c1.S, c1.V, 8, 5, 5)).toBeLessThan(1e-13);
  });

  test("principal angle of a known rotation", () => {
    // span{e0, e1} vs span{e0, cos t e1 + sin t e2}: largest angle t
    const rows = 4;
    const t = 0.3;
    const a = new Float64Array([1, 0, 0, 1, 0, 0, 0, 0]);
    const b = new Float64Array([1, 0, 0, Math.cos(t), 0, Math.sin(t), 0, 0]);
    expect(Math.abs(maxPrincipalAngleDegrees(a, b, rows, 2) - (t * 180) / Math.PI)).toBeLessThan(
      1e-12,
    );
    const tiny = 1e-9;
    const c = new Float64Array([1, 0, 0, Math.cos(tiny), 0, Math.sin(tiny), 0, 0]);
    expect(maxPrincipalAngleDegrees(a, c, rows, 2) / ((tiny * 180) / Math.PI)).toBeCloseTo(1, 6);
  });
});
