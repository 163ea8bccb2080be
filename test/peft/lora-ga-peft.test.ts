// LoRA-GA, variant "peft", against HF PEFT 0.21 on the gradients PEFT itself computed
// (test/fixtures/peft, made by scripts/fixtures/make_peft_loraga.py: preprocess_loraga on a tiny
// Llama, a tiny Gemma 3 and, for fan_in_fan_out, a tiny GPT-2, then get_peft_model with
// init_lora_weights="lora_ga").
// SVD signs and torch's random test matrix cannot be reproduced, so the comparison uses the
// sign-invariant quantities of docs/lora-ga-spec.md §9.2: A^T A, B B^T, row norms of A, column
// norms of B, the singular values of B A, ||offset||_F; plus the exact identity W' + s B A == W on
// our side.

import { describe, expect, test } from "vitest";
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
