// The non-LoRA-GA initialisations: PiSSA and OLoRA against PEFT 0.21 (fixture pissa-olora.safetensors),
// PEFT's default (kaiming-uniform A, zero B) and "gaussian" by their distributions, LoRA-One by
// its defining identity s B A = -(s / (gamma sigma_1)) G_r, and the init registry.

import { describe, expect, test } from "vitest";
import { svdJacobi } from "../../src/linalg/svd-jacobi.js";
import { loraScaling } from "../../src/peft/config.js";
import { initAdapter, initMethodOf } from "../../src/peft/init/index.js";
import { loraOneInit } from "../../src/peft/init/lora-one.js";
import { Rng } from "../../src/util/random.js";
import {
  get,
  gramCols,
  gramRows,
  linearInfos,
  maxAbs,
  maxAbsDiff,
  mm,
  readAll,
  readMeta,
} from "./peft-fixtures.js";

const meta = readMeta();
const targets = linearInfos(meta, "llama").filter((l) => /(q|v|up|down)_proj$/.test(l.path));
const r = 2;
const s = loraScaling(4, 2, false);

describe("PiSSA and OLoRA vs PEFT 0.21", () => {
  test("pissa (exact SVD): B A, projectors and W' match PEFT", async () => {
    const t = await readAll("pissa-olora.safetensors");
    const w = await readAll("llama.safetensors");
    for (const info of targets) {
      const { path, inFeatures: n, outFeatures: m } = info;
      const res = initAdapter("pissa", {
        path,
        inFeatures: n,
        outFeatures: m,
        fanInFanOut: false,
        r,
        scaling: s,
        weight: get(w, `weight.${path}`),
        rng: new Rng(0),
      });
      const pA = get(t, `pissa.${path}.A`);
      const pB = get(t, `pissa.${path}.B`);
      // B A is invariant under the joint sign flip of (u_i, v_i)
      const ba = mm(res.B, res.A, m, r, n);
      expect(maxAbsDiff(ba, mm(pB, pA, m, r, n)) / maxAbs(ba)).toBeLessThan(1e-5);
      expect(
        maxAbsDiff(gramCols(res.A, r, n), gramCols(pA, r, n)) / maxAbs(gramCols(pA, r, n)),
      ).toBeLessThan(1e-5);
      const W = get(w, `weight.${path}`);
      const off = res.baseOffset as Float32Array;
      const wPrime = W.map((v, i) => v - off[i]);
      expect(maxAbsDiff(wPrime, get(t, `pissa.${path}.W`))).toBeLessThan(1e-6);
    }
  });

  test("pissa_niter_4 (randomized SVD, q = r) matches exact PiSSA on a decaying spectrum", () => {
    // W (20, 12) = U diag(0.5^i) V^T with random orthonormal U, V: a clear gap after r = 2
    const m = 20;
    const n = 12;
    const rng = new Rng(77);
    const orth = (rows: number, c: number) => {
      const a = new Float64Array(rows * c);
      rng.fillNormal(a, 0, 1);
      return svdJacobi(a, rows, c).U;
    };
    const U = orth(m, n);
    const V = orth(n, n);
    const W = new Float32Array(m * n);
    for (let q = 0; q < n; q++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) W[i * n + j] += 0.5 ** q * U[i * n + q] * V[j * n + q];
    const ctx = {
      path: "toy",
      inFeatures: n,
      outFeatures: m,
      fanInFanOut: false,
      r,
      scaling: s,
      weight: W,
      rng: new Rng(0),
    };
    const exact = initAdapter("pissa", ctx);
    const fast = initAdapter("pissa_niter_4", { ...ctx, rng: new Rng(1) });
    const a = mm(exact.B, exact.A, m, r, n);
    const b = mm(fast.B, fast.A, m, r, n);
    expect(maxAbsDiff(a, b) / maxAbs(a)).toBeLessThan(1e-2);
  });

  test("olora: A, B and W' equal PEFT's (Householder QR signs as LAPACK)", async () => {
    const t = await readAll("pissa-olora.safetensors");
    const w = await readAll("llama.safetensors");
    for (const info of targets) {
      const { path, inFeatures: n, outFeatures: m } = info;
      const res = initAdapter("olora", {
        path,
        inFeatures: n,
        outFeatures: m,
        fanInFanOut: false,
        r,
        scaling: s,
        weight: get(w, `weight.${path}`),
        rng: new Rng(0),
      });
      expect(maxAbsDiff(res.A, get(t, `olora.${path}.A`))).toBeLessThan(1e-5);
      expect(maxAbsDiff(res.B, get(t, `olora.${path}.B`))).toBeLessThan(1e-5);
      const off = res.baseOffset as Float32Array;
      expect(
        maxAbsDiff(
          get(w, `weight.${path}`).map((v, i) => v - off[i]),
          get(t, `olora.${path}.W`),
        ),
      ).toBeLessThan(1e-6);
    }
  });
});

describe("default and gaussian inits (PEFT reset_lora_parameters)", () => {
  const ctx = {
    path: "x",
    inFeatures: 400,
    outFeatures: 30,
    fanInFanOut: false,
    r: 8,
    scaling: 1,
    rng: new Rng(9),
  };
  test("true: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_, a = sqrt 5), B = 0, no offset", () => {
    const res = initAdapter(true, ctx);
    const bound = 1 / Math.sqrt(400);
    expect(maxAbs(res.A)).toBeLessThanOrEqual(bound);
    expect(maxAbs(res.A)).toBeGreaterThan(0.99 * bound);
    let sq = 0;
    for (const v of res.A) sq += v * v;
    expect(Math.sqrt(sq / res.A.length) / (bound / Math.sqrt(3))).toBeCloseTo(1, 1); // uniform std = bound / sqrt 3
    expect(maxAbs(res.B)).toBe(0);
    expect(res.baseOffset).toBeNull();
  });
  test("gaussian: A ~ N(0, std 1/r), B = 0", () => {
    const res = initAdapter("gaussian", { ...ctx, rng: new Rng(10) });
    let sq = 0;
    for (const v of res.A) sq += v * v;
    expect(Math.sqrt(sq / res.A.length) * 8).toBeCloseTo(1, 1);
    expect(maxAbs(res.B)).toBe(0);
  });
  test("registry names and errors", () => {
    expect(initMethodOf("pissa_niter_16")).toBe("pissa");
    expect(() => initMethodOf("loftq" as never)).toThrow(/supported: true, false, "gaussian"/);
    expect(() => initAdapter("lora_ga", { ...ctx, grad: new Float32Array(12000) })).toThrow(
      /needs LoRA-GA options/,
    );
  });
});

describe("LoRA-One", () => {
  test("s B A = -(s / (gamma sigma_1)) G_r, no offset by default; offset on request", async () => {
    const w = await readAll("llama.safetensors");
    for (const info of targets) {
      const { path, inFeatures: n, outFeatures: m } = info;
      const G = get(w, `grad.${path}`);
      const ctx = {
        path,
        inFeatures: n,
        outFeatures: m,
        fanInFanOut: false,
        r,
        scaling: s,
        grad: G,
        rng: new Rng(4),
      };
      const res = loraOneInit(ctx, { method: "exact", stableGamma: 64 });
      expect(res.baseOffset).toBeNull();
      const svd = svdJacobi(G, m, n);
      const k = svd.k;
      const expected = new Float64Array(m * n);
      for (let q = 0; q < r; q++)
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++)
            expected[i * n + j] -=
              (svd.S[q] * svd.U[i * k + q] * svd.V[j * k + q]) / (64 * svd.S[0]);
      const ba = mm(res.B, res.A, m, r, n);
      expect(maxAbsDiff(ba, expected) / maxAbs(expected)).toBeLessThan(1e-5);
      // A and B share the factor: A A^T = B^T B = diag(S_r / S_0) / gamma
      expect(maxAbsDiff(gramRows(res.A, r, n), gramCols(res.B, m, r))).toBeLessThan(1e-6);
      const withOffset = loraOneInit(
        { ...ctx, rng: new Rng(4) },
        { method: "exact", subtractOffset: true },
      );
      expect(
        maxAbsDiff(
          withOffset.baseOffset as Float32Array,
          mm(withOffset.B, withOffset.A, m, r, n).map((v) => s * v),
        ),
      ).toBeLessThan(1e-7);
    }
  });
});
