// Randomized SVD benchmark: time and accuracy of svdLowrank (q = 4k, niter = 4, LoRA-GA's
// setting) on 1024x1024, 2048x2048 and 4096x1024 at k = 32 and 64, on the fastest kernels
// available (wasm, else ref), with numpy's full SVD of the same shape timed in the same run.
//
// Accuracy needs the exact top-k singular triplets, and an exact SVD of a 4096-row matrix in
// TypeScript would dominate the run, so the test matrices are built with a KNOWN spectrum:
// A = U diag(s) V^T with s_i = 1/(1+i) (a power-law decay, gradient-like), where U and V are the
// leading columns of Kronecker products of two small random orthogonal matrices (orthonormal
// exactly, dense). The randomized SVD's error depends only on the spectrum, not on U and V
// (the Gaussian test matrix is rotation invariant: Halko et al. 2009, §10), so this is no easier
// than a dense random basis.
// Reported: ms, max principal angle (degrees) between the exact and computed top-k left and right
// subspaces, max relative error of the top-k singular values, numpy full-SVD ms and the speed-up.

import { createKernels } from "../src/kernels/index.js";
import type { Kernels } from "../src/kernels/kernels.js";
import { qr } from "../src/linalg/qr.js";
import { leadingColumns, maxPrincipalAngleDegrees, svdLowrank } from "../src/linalg/svd.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { Rng } from "../src/util/random.js";
import { measureCeiling } from "./ceiling.js";
import { type Reporter, timeIt } from "./report.js";

interface Case {
  m: number;
  n: number;
  k: number;
}

/** Largest divisor of n that is <= sqrt(n). */
function squareishFactor(n: number): number {
  for (let a = Math.floor(Math.sqrt(n)); a > 1; a--) if (n % a === 0) return a;
  return 1;
}

/** A random (d, d) orthogonal matrix, row-major (Q of a Gaussian matrix's QR). */
function randomOrthogonal(rng: Rng, d: number): Float64Array {
  const g = new Float64Array(d * d);
  rng.fillNormal(g, 0, 1);
  return qr(g, d, d).Q;
}

/** First r columns of kron(Q1, Q2) for random orthogonal Q1 (a, a), Q2 (b, b), a b = rows. */
function kroneckerBasis(rng: Rng, rows: number, r: number): Float64Array {
  const a = squareishFactor(rows);
  const b = rows / a;
  const q1 = randomOrthogonal(rng, a);
  const q2 = randomOrthogonal(rng, b);
  const out = new Float64Array(rows * r); // (rows, r)
  for (let i1 = 0; i1 < a; i1++) {
    for (let i2 = 0; i2 < b; i2++) {
      const row = (i1 * b + i2) * r;
      for (let c = 0; c < r; c++) {
        const c1 = Math.floor(c / b);
        const c2 = c % b;
        out[row + c] = q1[i1 * a + c1] * q2[i2 * b + c2];
      }
    }
  }
  return out;
}

/** A (m, n) f32 with A = U diag(s) V^T, built with the engine's matmul. */
function knownSpectrum(kernels: Kernels, rng: Rng, m: number, n: number) {
  const r = Math.min(m, n);
  const u = kroneckerBasis(rng, m, r);
  const v = kroneckerBasis(rng, n, r);
  const s = Float64Array.from({ length: r }, (_, i) => 1 / (1 + i));
  const heap = kernels.heap;
  const us = heap.tensor([m, r]);
  const vt = heap.tensor([n, r]);
  const a = heap.tensor([m, n]);
  const usView = us.f32();
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) usView[i * r + j] = u[i * r + j] * s[j];
  vt.f32().set(v);
  kernels.matmul(a, us, vt, { transB: true });
  const values = a.toArray();
  a.dispose();
  vt.dispose();
  us.dispose();
  return { a: values, u, v, s, r };
}

async function fastestKernels(heap: Heap, threads: number, reporter: Reporter): Promise<Kernels> {
  try {
    return await createKernels("wasm", { heap, threads });
  } catch (error) {
    reporter.note(`wasm kernels unavailable (${String(error)}); using ref`);
    return createKernels("ref", { heap });
  }
}

export async function svdSuite(reporter: Reporter, { quick }: { quick: boolean }): Promise<void> {
  const shapes: [number, number][] = quick
    ? [[1024, 1024]]
    : [
        [1024, 1024],
        [2048, 2048],
        [4096, 1024],
      ];
  const cases: Case[] = [];
  for (const [m, n] of shapes) for (const k of [32, 64]) cases.push({ m, n, k });
  const cores = await cpuCount();

  const numpyMs = new Map<string, number>();
  const ceiling = measureCeiling({ svd: shapes, threads: cores });
  if (ceiling === null) reporter.note("numpy ceiling unavailable (python3 + numpy missing)");
  for (const row of ceiling ?? []) {
    numpyMs.set(`${row.m}x${row.n}`, Number(row.ms));
    reporter.record({ ...row, threads: cores });
  }

  const heap = new Heap({ initialBytes: 256 * 2 ** 20 });
  const kernels = await fastestKernels(heap, cores, reporter);
  const rng = new Rng(2407);
  try {
    for (const [m, n] of shapes) {
      const g = knownSpectrum(kernels, rng, m, n);
      for (const c of cases.filter((x) => x.m === m && x.n === n)) {
        const q = 4 * c.k;
        const runs: {
          impl: string;
          normalizer: "lu" | "qr";
          options: Parameters<typeof svdLowrank>[3];
        }[] = [
          { impl: kernels.name, normalizer: "lu", options: { q, niter: 4, seed: 1, kernels } },
        ];
        if (!quick && m === 1024 && n === 1024 && c.k === 32) {
          // torch's normaliser (QR at every step), and the plain-TypeScript float64 products
          runs.push({
            impl: kernels.name,
            normalizer: "qr",
            options: { q, niter: 4, seed: 1, kernels, normalizer: "qr" },
          });
          runs.push({ impl: "ts-f64", normalizer: "lu", options: { q, niter: 4, seed: 1 } });
        }
        for (const run of runs) {
          let svd = svdLowrank(g.a, m, n, run.options);
          const reps = quick || m * n > 2 ** 21 || run.impl === "ts-f64" ? 1 : 3;
          const ms = await timeIt(
            () => {
              svd = svdLowrank(g.a, m, n, run.options);
            },
            reps,
            0,
          );
          const angleU = maxPrincipalAngleDegrees(
            leadingColumns(g.u, m, g.r, c.k),
            leadingColumns(svd.U, m, q, c.k),
            m,
            c.k,
          );
          const angleV = maxPrincipalAngleDegrees(
            leadingColumns(g.v, n, g.r, c.k),
            leadingColumns(svd.V, n, q, c.k),
            n,
            c.k,
          );
          let sErr = 0;
          for (let i = 0; i < c.k; i++) sErr = Math.max(sErr, Math.abs(svd.S[i] - g.s[i]) / g.s[i]);
          const np = numpyMs.get(`${m}x${n}`);
          reporter.record({
            kernel: "svd_lowrank",
            m,
            n,
            k: c.k,
            q,
            niter: 4,
            impl: run.impl,
            normalizer: run.normalizer,
            threads: run.impl === "ts-f64" ? 1 : kernels.threads,
            ms,
            max_angle_u_deg: angleU,
            max_angle_v_deg: angleV,
            s_rel_err: sErr,
            numpy_full_svd_ms: np ?? null,
            speedup_vs_numpy: np === undefined ? null : np / ms,
          });
        }
      }
    }
  } finally {
    await kernels.dispose();
  }
}
