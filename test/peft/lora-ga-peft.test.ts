// LoRA-GA, variant "peft", against HF PEFT 0.21 on the gradients PEFT itself computed
// (test/fixtures/peft, made by scripts/fixtures/make_peft_loraga.py: preprocess_loraga on a tiny
// Llama, a tiny Gemma 3 and, for fan_in_fan_out, a tiny GPT-2, then get_peft_model with
// init_lora_weights="lora_ga").
// SVD signs and torch's random test matrix cannot be reproduced, so the comparison uses the
// sign-invariant quantities of docs/lora-ga-spec.md §9.2: A^T A, B B^T, row norms of A, column
// norms of B, the singular values of B A, ||offset||_F; plus the exact identity W' + s B A == W on
// our side. The same on the tiny qwen3, smollm3 and phi3 (scripts/fixtures/make_tiny_archs.py:
// every linear layer, phi3's fused qkv_proj and gate_up_proj as one (out, in) matrix each).

import { describe, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { svdJacobi } from "../../src/linalg/svd-jacobi.js";
import { loraScaling } from "../../src/peft/config.js";
import { type LoraGAInitOptions, loraGAInit } from "../../src/peft/init/lora-ga.js";
import { Rng } from "../../src/util/random.js";
import { nonEmpty } from "../helpers/fixture-cases.js";
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
  outIn,
  readAll,
  readMeta,
  rowNorms,
} from "./peft-fixtures.js";

const meta = readMeta();
const MODELS = ["llama", "gpt2", "gemma"] as const;
const SCALE_OF = { stable: "stable", gd_scale: "gd", unit: "unit", weight_svd: "weightS" } as const;

/** max |x - y| / max |y| */
function relDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return maxAbsDiff(x, y) / Math.max(maxAbs(y), 1e-30);
}

describe.each(MODELS)("LoRA-GA peft variant vs PEFT 0.21 (%s)", (model) => {
  const cases = nonEmpty(
    meta.cases.filter((c) => c.model === model),
    `peft/cases.json (${model})`,
  );
  const infos = linearInfos(meta, model).filter((l) =>
    meta.models[model].targets.some((t) => l.path.endsWith(`.${t}`)),
  );
  test.each(cases.flatMap((c) => (["lowrank", "exact"] as const).map((svd) => ({ c, svd }))))(
    "$c.name with $svd SVD",
    async ({ c, svd }) => {
      const t = await readAll(`${model}.safetensors`);
      const s = loraScaling(c.lora_alpha, c.r, c.use_rslora);
      const options: LoraGAInitOptions = {
        direction: c.direction,
        scale: SCALE_OF[c.scale],
        stableGamma: c.stable_gamma,
        variant: "peft",
        method: svd,
      };
      const worst = { gramA: 0, gramB: 0, sv: 0, offset: 0, identity: 0 };
      for (const info of infos) {
        const { path, inFeatures: n, outFeatures: m, fanInFanOut } = info;
        const r = c.r;
        const weight = get(t, `weight.${path}`);
        const ours = loraGAInit(
          {
            path,
            inFeatures: n,
            outFeatures: m,
            fanInFanOut,
            r,
            scaling: s,
            weight,
            grad: get(t, `grad.${path}`),
            rng: new Rng(11),
          },
          options,
        );
        const pA = get(t, `${c.name}.${path}.A`);
        const pB = get(t, `${c.name}.${path}.B`);
        const pW = outIn(get(t, `${c.name}.${path}.W`), m, n, fanInFanOut);
        const W = outIn(weight, m, n, fanInFanOut);
        expect(ours.A.length).toBe(pA.length);
        expect(ours.B.length).toBe(pB.length);
        worst.gramA = Math.max(worst.gramA, relDiff(gramCols(ours.A, r, n), gramCols(pA, r, n)));
        worst.gramB = Math.max(worst.gramB, relDiff(gramRows(ours.B, m, r), gramRows(pB, m, r)));
        const rnA = rowNorms(ours.A, r, n);
        const cnB = colNorms(ours.B, m, r);
        worst.gramA = Math.max(worst.gramA, relDiff(rnA, rowNorms(pA, r, n)));
        worst.gramB = Math.max(worst.gramB, relDiff(cnB, colNorms(pB, m, r)));
        const svOurs = svdJacobi(mm(ours.B, ours.A, m, r, n), m, n).S.slice(0, r);
        const svPeft = svdJacobi(mm(pB, pA, m, r, n), m, n).S.slice(0, r);
        worst.sv = Math.max(worst.sv, relDiff(svOurs, svPeft));
        // PEFT's offset is W - W'; ours is returned explicitly
        const peftOffset = W.map((w, i) => w - pW[i]);
        const offset = ours.baseOffset as Float32Array;
        worst.offset = Math.max(
          worst.offset,
          Math.abs(frob(offset) - frob(peftOffset)) / frob(peftOffset),
        );
        // W' + s B A == W with W' = W - offset, B A from the stored A and B
        const ba = mm(ours.B, ours.A, m, r, n);
        const wPrime = Float32Array.from(W, (w, i) => w - offset[i]);
        worst.identity = Math.max(
          worst.identity,
          maxAbsDiff(
            wPrime.map((w, i) => w + s * ba[i]),
            W,
          ) / maxAbs(W),
        );
      }
      console.log(
        `${model} ${c.name} ${svd}: ${JSON.stringify(worst, (_k, v) => (typeof v === "number" ? Number(v.toPrecision(2)) : v))}`,
      );
      // Projectors: the llama up_proj gradient has sigma_4 / sigma_5 = 0.0040 / 0.0035, so the
      // r..2r-1 subspace is only determined to ~5e-3 by PEFT's own svd_lowrank (q = 4r, niter 4);
      // measured: <= 7.1e-3 (ours lowrank), <= 4.7e-3 (ours exact).
      expect(worst.gramA).toBeLessThan(1e-2);
      if (c.scale === "weight_svd") {
        // PEFT estimates sigma_1(W) with svd_lowrank(W, q=r, niter=4) on a flat-spectrum random
        // weight: its own estimate is ~1% low (depends on torch's random test matrix), so only the
        // exact SVD is compared, loosely (measured 8.4e-3).
        if (svd === "exact") {
          expect(worst.gramB).toBeLessThan(4e-2); // B carries the scale: 2 x the sigma_1 error
          expect(worst.sv).toBeLessThan(2e-2);
          expect(worst.offset).toBeLessThan(2e-2);
        }
      } else {
        expect(worst.gramB).toBeLessThan(1e-2);
        expect(worst.sv).toBeLessThan(1e-4);
        expect(worst.offset).toBeLessThan(1e-4);
      }
      expect(worst.identity).toBeLessThan(1e-6);
    },
  );
});

/** Every tensor of a safetensors file as Float32Array. */
async function readFile(path: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, Float32Array>();
    for (const [name, entry] of f.entries) {
      if (entry.shape.length === 2) out.set(name, await f.readF32(name));
    }
    return out;
  } finally {
    await f.close();
  }
}

// Against PEFT with its torch.svd_lowrank swapped for an exact SVD (peft-init-exact), our exact SVD
// must agree to float precision. Against PEFT's own svd_lowrank (peft-init) the agreement is only as
// good as PEFT's estimate of the r..2r-1 singular subspace, which these random models' flat gradient
// spectra leave loose: B B^T is compared with a wider bound there.
// (the tiny T5s: make_tiny_t5.py, same fixture layout)
const ARCH_MODELS = ["qwen3", "smollm3", "phi3", "t5", "t5-v1_1"];
describe.each(ARCH_MODELS)("LoRA-GA peft variant vs PEFT 0.21 on %s", (model) => {
  test.each([
    { svd: "exact", file: "peft-init-exact", gramB: 1e-4 },
    { svd: "lowrank", file: "peft-init", gramB: 5e-2 },
  ] as const)("ArB2r stable, r 2: $svd SVD vs $file", async ({ svd, file, gramB }) => {
    const grads = await readFile(`test/fixtures/e2e/${model}/grads.safetensors`);
    const peft = await readFile(`test/fixtures/e2e/${model}/${file}.safetensors`);
    const weights = await readFile(`test/fixtures/models/${model}/model.safetensors`);
    const r = 2;
    const s = loraScaling(4, r, false);
    const worst = { gramA: 0, gramB: 0, sv: 0, offset: 0 };
    for (const path of nonEmpty([...grads.keys()], `e2e/${model}/grads.safetensors`)) {
      const W = get(weights, `${path}.weight`);
      const pA = get(peft, `${path}.A`);
      const pB = get(peft, `${path}.B`);
      const n = pA.length / r;
      const m = pB.length / r;
      const ours = loraGAInit(
        {
          path,
          inFeatures: n,
          outFeatures: m,
          fanInFanOut: false,
          r,
          scaling: s,
          weight: W,
          grad: get(grads, path),
          rng: new Rng(11),
        },
        { direction: "ArB2r", scale: "stable", stableGamma: 16, variant: "peft", method: svd },
      );
      worst.gramA = Math.max(worst.gramA, relDiff(gramCols(ours.A, r, n), gramCols(pA, r, n)));
      worst.gramB = Math.max(worst.gramB, relDiff(gramRows(ours.B, m, r), gramRows(pB, m, r)));
      const svOurs = svdJacobi(mm(ours.B, ours.A, m, r, n), m, n).S.slice(0, r);
      const svPeft = svdJacobi(mm(pB, pA, m, r, n), m, n).S.slice(0, r);
      worst.sv = Math.max(worst.sv, relDiff(svOurs, svPeft));
      const pW = get(peft, `${path}.W`);
      const peftOffset = W.map((w, i) => w - pW[i]);
      worst.offset = Math.max(
        worst.offset,
        Math.abs(frob(ours.baseOffset as Float32Array) - frob(peftOffset)) / frob(peftOffset),
      );
    }
    console.log(`${model} ${svd}: ${JSON.stringify(worst)}`);
    expect(worst.gramA).toBeLessThan(svd === "exact" ? 1e-4 : 1e-2);
    expect(worst.gramB).toBeLessThan(gramB);
    expect(worst.sv).toBeLessThan(svd === "exact" ? 1e-4 : 1e-3);
    expect(worst.offset).toBeLessThan(svd === "exact" ? 1e-4 : 1e-3);
  });
});
