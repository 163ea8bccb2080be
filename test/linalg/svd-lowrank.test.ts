// Randomized SVD (torch.svd_lowrank's algorithm): against torch.svd_lowrank itself with the same
// Omega (fixture from scripts/fixtures/make_svd_cases.py), against known spectra for
// gradient-like matrices (principal angles, singular values), seeded reproducibility, wide and
// tall inputs, rank deficiency, the kernels path (ref kernels, float32 products), and errors.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { KernelsName } from "../../src/kernels/kernels.js";
import { canonicalizeSigns, svdLowrank } from "../../src/linalg/svd.js";
import { Heap } from "../../src/tensor/heap.js";
import { nonEmpty } from "../helpers/fixture-cases.js";
import { NATIVE_ENGINES } from "../helpers/native.js";
import {
  columns,
  maxDiffUpToColumnSign,
  orthonormalityError,
  Rng,
  randomOrthonormal,
  reconstructionError,
  sinAngleBound,
  withSpectrum,
} from "./linalg-helpers.js";

interface LowrankCase {
  name: string;
  m: number;
  n: number;
  q: number;
  niter: number;
  a: number[];
  omega: number[];
  u: number[];
  s: number[];
  v: number[];
  exactS: number[];
}
const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/svd_cases.json", import.meta.url), "utf8"),
) as { lowrank: LowrankCase[] };

/** Degrees from the Frobenius upper bound on sin(theta_max). */
function angleBoundDegrees(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  k: number,
): number {
  return (Math.asin(Math.min(1, sinAngleBound(a, b, rows, k))) * 180) / Math.PI;
}

const normalizers = ["lu", "qr"] as const;
const torchCases = nonEmpty(fixture.lowrank, "svd_cases.json lowrank").flatMap((c) =>
  normalizers.map((normalizer) => ({ ...c, normalizer })),
);

describe("svdLowrank vs torch.svd_lowrank (same Omega)", () => {
  test.each(torchCases)("$name, normalizer $normalizer", (c) => {
    const a = Float64Array.from(c.a);
    const omega = Float64Array.from(c.omega);
    const svd = svdLowrank(a, c.m, c.n, {
      q: c.q,
      niter: c.niter,
      omega,
      normalizer: c.normalizer,
    });
    expect([svd.m, svd.n, svd.k]).toEqual([c.m, c.n, c.q]);
    for (let i = 0; i < c.q; i++) expect(Math.abs(svd.S[i] - c.s[i])).toBeLessThan(1e-12 * c.s[0]);
    expect(orthonormalityError(svd.U, c.m, c.q)).toBeLessThan(1e-13);
    expect(orthonormalityError(svd.V, c.n, c.q)).toBeLessThan(1e-13);
    // the spectra in the fixture have gaps, so each singular vector is determined up to sign
    expect(maxDiffUpToColumnSign(svd.U, c.u, c.m, c.q)).toBeLessThan(1e-9);
    expect(maxDiffUpToColumnSign(svd.V, c.v, c.n, c.q)).toBeLessThan(1e-9);
  });

  test("decaying spectra: the leading half of the triplets equals the exact SVD", () => {
    for (const c of fixture.lowrank.filter((x) => x.name.startsWith("decaying"))) {
      const svd = svdLowrank(Float64Array.from(c.a), c.m, c.n, {
        q: c.q,
        niter: c.niter,
        omega: Float64Array.from(c.omega),
      });
      for (let i = 0; i < c.q / 2; i++)
        expect(Math.abs(svd.S[i] - c.exactS[i])).toBeLessThan(1e-12);
    }
  });

  test("q = min(m, n) reproduces the matrix", () => {
    const c = fixture.lowrank.find((x) => x.q === Math.min(x.m, x.n));
    if (c === undefined) throw new Error("fixture lacks a full-rank case");
    const svd = svdLowrank(Float64Array.from(c.a), c.m, c.n, {
      q: c.q,
      niter: c.niter,
      omega: Float64Array.from(c.omega),
    });
    expect(reconstructionError(c.a, svd.U, svd.S, svd.V, c.m, c.n, c.q)).toBeLessThan(1e-13);
  });
});

/** A gradient-like matrix: random singular vectors, power-law spectrum s_i = 1/(1+i). */
function gradientLike(rng: Rng, m: number, n: number) {
  const r = Math.min(m, n);
  const u = randomOrthonormal(rng, m, r);
  const v = randomOrthonormal(rng, n, r);
  const s = Array.from({ length: r }, (_, i) => 1 / (1 + i));
  return { a: withSpectrum(u, s, v, m, n, r), u, v, s, r };
}

describe("svdLowrank on known spectra", () => {
  const rng = new Rng(77);
  const tall = gradientLike(rng, 256, 192);
  const wide = gradientLike(rng, 96, 160);

  test.each([
    ["tall 256x192", tall, 256, 192],
    ["wide 96x160", wide, 96, 160],
  ] as const)("%s, k=16, q=64, niter=4: top-k subspaces and singular values", (_, g, m, n) => {
    const k = 16;
    const svd = svdLowrank(g.a, m, n, { q: 64, niter: 4, seed: 1 });
    expect(orthonormalityError(svd.U, m, 64)).toBeLessThan(1e-13);
    expect(orthonormalityError(svd.V, n, 64)).toBeLessThan(1e-13);
    const angleU = angleBoundDegrees(columns(g.u, m, g.r, k), columns(svd.U, m, 64, k), m, k);
    const angleV = angleBoundDegrees(columns(g.v, n, g.r, k), columns(svd.V, n, 64, k), n, k);
    // theory (Halko et al. 2009, §10): error ~ (s_{q+1}/s_k)^(2 niter + 1) = (17/65)^9 ~ 6e-6
    expect(angleU).toBeLessThan(2);
    expect(angleV).toBeLessThan(2);
    expect(angleU).toBeLessThan(0.01);
    expect(angleV).toBeLessThan(0.01);
    for (let i = 0; i < k; i++) expect(Math.abs(svd.S[i] - g.s[i]) / g.s[i]).toBeLessThan(1e-6);
    // a randomized SVD never overestimates: S_i <= s_i (interlacing for Q^T A)
    for (let i = 0; i < 64; i++) expect(svd.S[i]).toBeLessThanOrEqual(g.s[i] * (1 + 1e-12));
  });

  test("niter = 0 is allowed and less accurate than niter = 4", () => {
    const k = 16;
    const s0 = svdLowrank(tall.a, 256, 192, { q: 64, niter: 0, seed: 1 });
    const s4 = svdLowrank(tall.a, 256, 192, { q: 64, niter: 4, seed: 1 });
    const a0 = sinAngleBound(columns(tall.u, 256, tall.r, k), columns(s0.U, 256, 64, k), 256, k);
    const a4 = sinAngleBound(columns(tall.u, 256, tall.r, k), columns(s4.U, 256, 64, k), 256, k);
    expect(a4).toBeLessThan(a0);
  });

  test("seeded reproducibility: same seed -> identical bits, other seed -> other basis, same values", () => {
    const x = svdLowrank(wide.a, 96, 160, { q: 24, seed: 5 });
    const y = svdLowrank(wide.a, 96, 160, { q: 24, seed: 5 });
    const z = svdLowrank(wide.a, 96, 160, { q: 24, seed: 6 });
    expect(Array.from(y.U)).toEqual(Array.from(x.U));
    expect(Array.from(y.S)).toEqual(Array.from(x.S));
    expect(Array.from(y.V)).toEqual(Array.from(x.V));
    expect(Array.from(z.S)).not.toEqual(Array.from(x.S));
    for (let i = 0; i < 4; i++) expect(Math.abs(z.S[i] - x.S[i])).toBeLessThan(1e-3 * x.S[0]);
  });

  test("rank-deficient input (rank 3, q = 8): finite, orthonormal, exact leading values", () => {
    const m = 40;
    const n = 30;
    const s = [3, 2, 1];
    const a = withSpectrum(randomOrthonormal(rng, m, 3), s, randomOrthonormal(rng, n, 3), m, n, 3);
    for (const input of [a, Float32Array.from(a)]) {
      const svd = svdLowrank(input, m, n, { q: 8, niter: 2, seed: 3 });
      for (const x of svd.U) expect(Number.isFinite(x)).toBe(true);
      expect(orthonormalityError(svd.U, m, 8)).toBeLessThan(1e-12);
      expect(orthonormalityError(svd.V, n, 8)).toBeLessThan(1e-12);
      const tol = input instanceof Float32Array ? 1e-6 : 1e-13;
      for (let i = 0; i < 3; i++) expect(Math.abs(svd.S[i] - s[i])).toBeLessThan(tol * 3);
      for (let i = 3; i < 8; i++) expect(svd.S[i]).toBeLessThan(tol * 3);
      expect(reconstructionError(input, svd.U, svd.S, svd.V, m, n, 8)).toBeLessThan(tol * 10);
    }
  });

  test("zero matrix: no NaN", () => {
    const svd = svdLowrank(new Float32Array(20 * 10), 20, 10, { q: 4 });
    for (const x of [...svd.U, ...svd.S, ...svd.V]) expect(Number.isFinite(x)).toBe(true);
    for (const x of svd.S) expect(x).toBe(0);
    expect(orthonormalityError(svd.U, 20, 4)).toBeLessThan(1e-14);
  });

  test("errors name the problem", () => {
    const a = new Float64Array(12);
    expect(() => svdLowrank(a, 3, 4, { q: 4 })).toThrow(
      /q must be an integer in \[1, min\(m, n\) = 3\]/,
    );
    expect(() => svdLowrank(a, 3, 4, { q: 0 })).toThrow(/q must be/);
    expect(() => svdLowrank(a, 3, 4, { q: 2, niter: -1 })).toThrow(/niter/);
    // @ts-expect-error: an invalid normalizer from untyped callers
    expect(() => svdLowrank(a, 3, 4, { q: 2, normalizer: "svd" })).toThrow(
      /normalizer must be "lu" or "qr", got svd/,
    );
    expect(() => svdLowrank(a, 3, 5, { q: 2 })).toThrow(/12 values/);
    expect(() => svdLowrank(a, 3, 4, { q: 2, omega: new Float64Array(7) })).toThrow(
      /omega has 7 values, expected \(cols\(X\), q\) = \(3, 2\)/,
    );
    const bad = new Float32Array(12);
    bad[5] = Number.POSITIVE_INFINITY;
    expect(() => svdLowrank(bad, 3, 4, { q: 2 })).toThrow(/element 5 \(row 1, col 1\) is Infinity/);
  });
});

describe.each<KernelsName>(["ref", "wasm", ...NATIVE_ENGINES])(
  "svdLowrank with %s kernels (float32 products)",
  (name) => {
    test.each([
      [120, 80],
      [70, 130],
    ])(
      "%i x %i agrees with the float64 path to float32 accuracy; heap is released",
      async (m, n) => {
        const rng = new Rng(m);
        const g = gradientLike(rng, m, n);
        const a32 = Float32Array.from(g.a);
        const heap = new Heap({ initialBytes: 1 << 22 });
        const kernels = await createKernels(name, { heap, threads: 2 });
        try {
          const before = heap.bytesInUse;
          const withKernels = canonicalizeSigns(
            svdLowrank(a32, m, n, { q: 20, niter: 3, seed: 9, kernels }),
          );
          expect(heap.bytesInUse).toBe(before);
          const plain = canonicalizeSigns(svdLowrank(a32, m, n, { q: 20, niter: 3, seed: 9 }));
          for (let i = 0; i < 20; i++)
            expect(Math.abs(withKernels.S[i] - plain.S[i])).toBeLessThan(1e-5 * plain.S[0]);
          const k = 5;
          expect(
            angleBoundDegrees(columns(plain.U, m, 20, k), columns(withKernels.U, m, 20, k), m, k),
          ).toBeLessThan(1e-3);
          expect(
            angleBoundDegrees(columns(plain.V, n, 20, k), columns(withKernels.V, n, 20, k), n, k),
          ).toBeLessThan(1e-3);
          expect(orthonormalityError(withKernels.U, m, 20)).toBeLessThan(1e-12);
        } finally {
          await kernels.dispose();
        }
      },
    );

    test("rank-deficient gradient (rank 6 < q = 16): finite, orthonormal, leading values to f32 accuracy", async () => {
      const rng = new Rng(6);
      const m = 90;
      const n = 64;
      const s = [5, 4, 3, 2, 1, 0.5];
      const a = Float32Array.from(
        withSpectrum(randomOrthonormal(rng, m, 6), s, randomOrthonormal(rng, n, 6), m, n, 6),
      );
      const heap = new Heap({ initialBytes: 1 << 22 });
      const kernels = await createKernels(name, { heap, threads: 2 });
      try {
        const svd = svdLowrank(a, m, n, { q: 16, niter: 4, seed: 2, kernels });
        for (const x of [...svd.U, ...svd.S, ...svd.V]) expect(Number.isFinite(x)).toBe(true);
        expect(orthonormalityError(svd.U, m, 16)).toBeLessThan(1e-12);
        expect(orthonormalityError(svd.V, n, 16)).toBeLessThan(1e-12);
        for (let i = 0; i < 6; i++) expect(Math.abs(svd.S[i] - s[i])).toBeLessThan(1e-5 * s[0]);
        for (let i = 6; i < 16; i++) expect(svd.S[i]).toBeLessThan(1e-5 * s[0]);
      } finally {
        await kernels.dispose();
      }
    });
  },
);
