// LoRA-GA, variant "official" (docs/lora-ga-spec.md §6; the paper's Algorithm 1), on the gradients
// PEFT computed for the tiny Llama fixture. Expectations come from the spec's formulas and the
// fixture's exact fp64 SVD of each gradient (torch.linalg.svd in
// scripts/fixtures/make_peft_loraga.py):
//   A rows / B columns span V[:, I_A] / U[:, I_B]  (A^T A = c^2 V_IA V_IA^T, B B^T = c^2 U_IB U_IB^T),
//   row norms of A = column norms of B = c, singular values of B A = c^2, ||offset||_F = s c^2 sqrt(r),
//   W' + s B A == W, and the first-step operator s^2 (G A^T A + B B^T G) = s^2 c^2 G_2r (§2.1).
// Plus the one-step alignment experiment of §2.1 run through the LoRA layer itself (§12).

import { describe, expect, test } from "vitest";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { qr } from "../../src/linalg/qr.js";
import { svdJacobi } from "../../src/linalg/svd-jacobi.js";
import type { LinearInfo } from "../../src/models/linear.js";
import { loraScaling } from "../../src/peft/config.js";
import { defaultInit } from "../../src/peft/init/default.js";
import { directionIndices, loraGAInit } from "../../src/peft/init/lora-ga.js";
import { LoraLinear } from "../../src/peft/lora.js";
import { Heap } from "../../src/tensor/heap.js";
import { Rng } from "../../src/util/random.js";
import {
  colNorms,
  frob,
  get,
  gramCols,
  gramRows,
  linearInfos,
  maxAbs,
  maxAbsDiff,
  mm,
  readAll,
  readMeta,
  rowNorms,
  transpose,
} from "./peft-fixtures.js";

const meta = readMeta();
const targets = linearInfos(meta, "llama").filter((l) => /(q|v|up|down)_proj$/.test(l.path));

/** Columns idx of X (rows, k) as (rows, idx.length). */
function cols(x: Float32Array, rows: number, k: number, idx: number[]): Float64Array {
  const out = new Float64Array(rows * idx.length);
  for (let i = 0; i < rows; i++)
    idx.forEach((c, t) => {
      out[i * idx.length + t] = x[i * k + c];
    });
  return out;
}

describe("LoRA-GA official variant invariants (docs/lora-ga-spec.md §6.1)", () => {
  const settings = [
    { direction: "ArB2r", scale: "stable", r: 2, alpha: 4, rs: false },
    { direction: "A2rBr", scale: "gd", r: 2, alpha: 16, rs: true },
    { direction: "ArBr", scale: "unit", r: 2, alpha: 8, rs: false },
    { direction: "random", scale: "weightS", r: 3, alpha: 6, rs: true },
  ] as const;
  test.each(settings)("$direction / $scale, r=$r", async (st) => {
    const t = await readAll("llama.safetensors");
    const s = loraScaling(st.alpha, st.r, st.rs);
    for (const info of targets) {
      const { path, inFeatures: n, outFeatures: m } = info;
      const r = st.r;
      const W = get(t, `weight.${path}`);
      const G = get(t, `grad.${path}`);
      const ctx = {
        path,
        inFeatures: n,
        outFeatures: m,
        fanInFanOut: false,
        r,
        scaling: s,
        weight: W,
        grad: G,
        rng: new Rng(3),
      };
      const res = loraGAInit(ctx, {
        direction: st.direction,
        scale: st.scale,
        stableGamma: 16,
        variant: "official",
        method: "exact",
      });
      let c: number;
      if (st.scale === "stable") c = m ** 0.25 / 4;
      else if (st.scale === "gd") c = 1 / s;
      else if (st.scale === "unit") c = 1;
      else {
        const sw = svdJacobi(W, m, n).S;
        c = 0;
        for (let i = 0; i < r; i++) c += Math.sqrt(sw[i] / s) / r;
      }
      const k = Math.min(m, n);
      const U = get(t, `svd.${path}.U`); // (m, k)
      const V = get(t, `svd.${path}.V`); // (n, k)
      const S = get(t, `svd.${path}.S`);
      const { ia, ib } = directionIndices(st.direction, r, "official", { rng: new Rng(3) });
      expect(new Set([...ia, ...ib]).size).toBe(2 * r); // disjoint, covering the top 2r
      const VA = cols(V, n, k, ia);
      const UB = cols(U, m, k, ib);
      const c2 = c * c;
      const projA = gramCols(res.A, r, n).map((v) => v / c2);
      const projB = gramRows(res.B, m, r).map((v) => v / c2);
      expect(maxAbsDiff(projA, gramRows(VA, n, r))).toBeLessThan(1e-4);
      expect(maxAbsDiff(projB, gramRows(UB, m, r))).toBeLessThan(1e-4);
      for (const v of rowNorms(res.A, r, n)) expect(v / c).toBeCloseTo(1, 5);
      for (const v of colNorms(res.B, m, r)) expect(v / c).toBeCloseTo(1, 5);
      const ba = mm(res.B, res.A, m, r, n);
      const sv = svdJacobi(ba, m, n).S;
      for (let i = 0; i < r; i++) expect(sv[i] / c2).toBeCloseTo(1, 5);
      const offset = res.baseOffset as Float32Array;
      expect(frob(offset) / (s * c2 * Math.sqrt(r))).toBeCloseTo(1, 5);
      const wPrime = Float32Array.from(W, (w, i) => w - offset[i]);
      // W' is rounded to float32, so the error is relative to the larger of |W| and |offset|
      expect(
        maxAbsDiff(
          wPrime.map((w, i) => w + s * ba[i]),
          W,
        ) / Math.max(maxAbs(W), maxAbs(offset)),
      ).toBeLessThan(1e-6);
      // first-step operator s^2 (G A^T A + B B^T G) == s^2 c^2 G_2r  (G_2r from the fixture SVD)
      const op = mm(G, gramCols(res.A, r, n), m, n, n);
      const bbg = mm(gramRows(res.B, m, r), G, m, m, n);
      const g2r = new Float64Array(m * n);
      for (let q = 0; q < 2 * r; q++)
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++) g2r[i * n + j] += S[q] * U[i * k + q] * V[j * k + q];
      const lhs = op.map((v, i) => (v + bbg[i]) / c2);
      expect(maxAbsDiff(lhs, g2r) / maxAbs(g2r)).toBeLessThan(1e-4);
    }
  });

  test("bf16 adapter: the offset comes from the rounded A and B, so W' + s B A == W still holds (docs/lora-ga-spec.md §6.4)", async () => {
    const t = await readAll("llama.safetensors");
    const info = targets[1];
    const { path, inFeatures: n, outFeatures: m } = info;
    const W = get(t, `weight.${path}`);
    const ctx = {
      path,
      inFeatures: n,
      outFeatures: m,
      fanInFanOut: false,
      r: 2,
      scaling: 2,
      weight: W,
      grad: get(t, `grad.${path}`),
      rng: new Rng(1),
      adapterDtype: "bf16" as const,
    };
    const res = loraGAInit(ctx, {
      direction: "ArB2r",
      scale: "stable",
      stableGamma: 16,
      variant: "official",
      method: "exact",
    });
    const bits = new Uint32Array(Float32Array.from([...res.A, ...res.B]).buffer);
    for (const b of bits) expect(b & 0xffff).toBe(0); // exactly representable in bf16
    const off = res.baseOffset as Float32Array;
    const ba = mm(res.B, res.A, m, 2, n);
    expect(
      maxAbsDiff(
        Float32Array.from(W, (w, i) => w - off[i] + 2 * ba[i]),
        W,
      ) / Math.max(maxAbs(W), maxAbs(off)),
    ).toBeLessThan(1e-6);
  });

  test("norm_clip shrinks so that max|offset| = max|W| and keeps W' + s B A == W (docs/lora-ga-spec.md §6.3)", async () => {
    const t = await readAll("llama.safetensors");
    const info = targets[0];
    const { path, inFeatures: n, outFeatures: m } = info;
    const W = get(t, `weight.${path}`).map((v) => v * 1e-3); // tiny weight: the clip must trigger
    const ctx = {
      path,
      inFeatures: n,
      outFeatures: m,
      fanInFanOut: false,
      r: 2,
      scaling: 8,
      weight: W,
      grad: get(t, `grad.${path}`),
      rng: new Rng(1),
    };
    const plain = loraGAInit(ctx, {
      direction: "ArB2r",
      scale: "unit",
      stableGamma: 16,
      variant: "official",
      method: "exact",
    });
    const ratio = maxAbs(W) / maxAbs(plain.baseOffset as Float32Array);
    expect(ratio).toBeLessThan(1);
    const clipped = loraGAInit(
      { ...ctx, rng: new Rng(1) },
      {
        direction: "ArB2r",
        scale: "unit",
        stableGamma: 16,
        variant: "official",
        method: "exact",
        normClip: true,
      },
    );
    const off = clipped.baseOffset as Float32Array;
    expect(maxAbs(off) / maxAbs(W)).toBeCloseTo(1, 5);
    for (const v of rowNorms(clipped.A, 2, n)) expect(v).toBeCloseTo(Math.sqrt(ratio), 5);
    const ba = mm(clipped.B, clipped.A, m, 2, n);
    expect(
      maxAbsDiff(
        Float32Array.from(W, (w, i) => w - off[i] + 8 * ba[i]),
        W,
      ) / maxAbs(W),
    ).toBeLessThan(1e-5);
  });
});

/**
 * The experiment of docs/lora-ga-spec.md §2.1 (written up in §12). Setup: G (32, 24) =
 * U diag(0.8^i) V^T with random orthonormal U, V (QR of Gaussian matrices); one linear layer with W = 0 and a LoRA of r = 2, alpha = 2 (s = 1);
 * inputs X = I_24 (24 rows) and upstream gradient dOut = G^T, so that dL/dW_eff = dOut^T X = G.
 * One SGD step (lr 1e-3) on A and B through LoraLinear.backward; the change of the effective weight
 * s (B1 A1 - B0 A0) is compared with the full fine-tuning step -G by cosine similarity.
 * Expected (derivation §2.1): LoRA-GA (gd scale, any disjoint split) gives -lr G_2r, cosine
 * ||G_2r||_F / ||G||_F = sqrt((1 - 0.64^4) / (1 - 0.64^24)) = 0.912; default LoRA (B = 0) gives
 * -lr s^2 G A^T A, with A random of rank 2 in 24 dims: cosine about sqrt(2/24) ~ 0.29.
 */
describe("one-step alignment with the full fine-tuning step (docs/lora-ga-spec.md §2.1, §12)", () => {
  const m = 32;
  const n = 24;
  const r = 2;
  const rng = new Rng(2024);
  const gauss = (rows: number, c: number) => {
    const a = new Float64Array(rows * c);
    rng.fillNormal(a, 0, 1);
    return qr(a, rows, c).Q;
  };
  const U = gauss(m, n);
  const V = gauss(n, n);
  const G = new Float32Array(m * n); // (out, in)
  for (let q = 0; q < n; q++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) G[i * n + j] += 0.8 ** q * U[i * n + q] * V[j * n + q];
  const info: LinearInfo = {
    path: "toy",
    inFeatures: n,
    outFeatures: m,
    weightName: "toy.weight",
    biasName: null,
    fanInFanOut: false,
  };

  function oneStepCosine(A0: Float32Array, B0: Float32Array, s: number): number {
    const heap = new Heap({ initialBytes: 8 * 2 ** 20 });
    const kernels = createRefKernels(heap);
    const lora = new LoraLinear(kernels, info, { r, scaling: s, A: A0, B: B0 });
    const x = heap.zeros([n, n]);
    const xv = x.f32();
    for (let i = 0; i < n; i++) xv[i * n + i] = 1;
    const out = heap.zeros([n, m]);
    lora.forward(out, x);
    const dOut = heap.fromArray(Float32Array.from(transpose(G, m, n)), [n, m]);
    lora.backward(null, dOut, x);
    const lr = 1e-3;
    const A1 = lora.A.toArray().map(
      (v, i) => v - lr * (lora.dA as NonNullable<typeof lora.dA>).f32()[i],
    );
    const B1 = lora.B.toArray().map(
      (v, i) => v - lr * (lora.dB as NonNullable<typeof lora.dB>).f32()[i],
    );
    const d1 = mm(B1, A1, m, r, n);
    const d0 = mm(B0, A0, m, r, n);
    const dW = d1.map((v, i) => s * (v - d0[i]));
    let dot = 0;
    for (let i = 0; i < dW.length; i++) dot += dW[i] * -G[i];
    return dot / (frob(dW) * frob(G));
  }

  const base = {
    path: "toy",
    inFeatures: n,
    outFeatures: m,
    fanInFanOut: false,
    r,
    scaling: 1,
    grad: G,
  };
  test.each(["ArB2r", "A2rBr", "ArBr", "random"] as const)(
    "LoRA-GA %s (gd scale) aligns at ~0.91",
    (direction) => {
      const res = loraGAInit(
        { ...base, rng: new Rng(5) },
        { direction, scale: "gd", stableGamma: 16, variant: "official", method: "exact" },
      );
      const cos = oneStepCosine(res.A, res.B, 1);
      console.log(`LoRA-GA ${direction}: cosine ${cos.toFixed(4)}`);
      expect(cos).toBeGreaterThan(0.9);
      expect(cos).toBeLessThan(0.92);
    },
  );

  test("default LoRA (kaiming A, zero B) aligns at ~0.25", () => {
    const cosines: number[] = [];
    for (let seed = 0; seed < 8; seed++) {
      const res = defaultInit({ ...base, rng: new Rng(100 + seed) });
      cosines.push(oneStepCosine(res.A, res.B, 1));
    }
    const mean = cosines.reduce((a, b) => a + b, 0) / cosines.length;
    console.log(`default LoRA: mean cosine ${mean.toFixed(4)} over 8 seeds`);
    expect(mean).toBeGreaterThan(0.1);
    expect(mean).toBeLessThan(0.45);
  });
});
