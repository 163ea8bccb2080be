// Reference AdamW vs torch.optim.AdamW (fixture from scripts/fixtures/make_adamw.py): several
// steps on float32 buffers, comparing the parameter and both moments after every step.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { adamw } from "../../src/kernels/ref/adamw.js";
import { expectAllclose } from "../helpers/allclose.js";
import { nonEmpty } from "../helpers/fixture-cases.js";

interface AdamWCase {
  name: string;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  param0: number[];
  steps: { grad: number[]; param: number[]; m: number[]; v: number[] }[];
}

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/adamw.json", import.meta.url), "utf8"),
) as {
  cases: AdamWCase[];
};

describe("ref adamw vs torch.optim.AdamW", () => {
  for (const c of nonEmpty(fixture.cases, "adamw.json")) {
    test(c.name, () => {
      const param = Float32Array.from(c.param0);
      const m = new Float32Array(param.length);
      const v = new Float32Array(param.length);
      c.steps.forEach((s, i) => {
        const options = {
          lr: c.lr,
          beta1: c.beta1,
          beta2: c.beta2,
          eps: c.eps,
          weightDecay: c.weight_decay,
          step: i + 1,
        };
        adamw(param, Float32Array.from(s.grad), m, v, options);
        // float32 storage on both sides; intermediates are float64 here and float32 in torch
        expectAllclose(m, s.m, { rtol: 1e-5, atol: 1e-7, label: `${c.name} step ${i + 1} m` });
        expectAllclose(v, s.v, { rtol: 1e-5, atol: 1e-12, label: `${c.name} step ${i + 1} v` });
        expectAllclose(param, s.param, {
          rtol: 1e-6,
          atol: 1e-7,
          label: `${c.name} step ${i + 1} param`,
        });
      });
    });
  }

  test("the first step moves every parameter by about lr (Adam's sign-like first step)", () => {
    const param = new Float64Array(3);
    const m = new Float64Array(3);
    const v = new Float64Array(3);
    adamw(param, Float64Array.of(2, -0.5, 1e-3), m, v, {
      lr: 0.01,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-12,
      weightDecay: 0,
      step: 1,
    });
    expectAllclose(param, [-0.01, 0.01, -0.01], { rtol: 1e-8, atol: 0, label: "param" });
    expect(m[0]).toBeCloseTo(0.2, 12);
    expect(v[0]).toBeCloseTo(0.004, 12);
  });
});
