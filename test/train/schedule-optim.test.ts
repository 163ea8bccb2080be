// Schedules against transformers' get_scheduler (scripts/fixtures/make_schedules.py); SGD against
// closed forms of torch.optim.SGD's recurrences; optimizer state round trips; global-norm clipping
// against its definition.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { clipGradNorm, globalGradNorm } from "../../src/train/clip.js";
import { createOptimizer, type TrainableParam } from "../../src/train/optimizer.js";
import { learningRate, type ScheduleName } from "../../src/train/schedule.js";
import { Rng } from "../../src/util/random.js";
import { maxMixedError, refKernels, TRAIN_FIXTURES } from "./train-helpers.js";

interface ScheduleCase {
  name: ScheduleName;
  base_lr: number;
  warmup: number;
  total: number;
  lrs: number[];
}

describe("learning-rate schedules vs transformers", () => {
  const cases = JSON.parse(
    readFileSync(join(TRAIN_FIXTURES, "schedules.json"), "utf8"),
  ) as ScheduleCase[];
  test.each(
    cases.map((c) => [`${c.name} lr ${c.base_lr} warmup ${c.warmup} total ${c.total}`, c] as const),
  )("%s", (_, c) => {
    const ours = c.lrs.map((_, k) =>
      learningRate(
        { name: c.name, baseLr: c.base_lr, warmupSteps: c.warmup, totalSteps: c.total },
        k,
      ),
    );
    expect(maxMixedError(ours, c.lrs), `${ours} vs ${c.lrs}`).toBeLessThanOrEqual(1e-15);
  });
  test("unknown schedule names are rejected with the list", () => {
    expect(() =>
      learningRate({ name: "poly" as ScheduleName, baseLr: 1, totalSteps: 3 }, 0),
    ).toThrow(/constant, constant_with_warmup, linear, cosine/);
  });
});

describe("optimizers and clipping", () => {
  let kernels: Kernels;
  beforeAll(async () => {
    kernels = await refKernels();
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  function makeParam(name: string, values: number[], grad: number[]): TrainableParam {
    return {
      name,
      param: kernels.heap.fromArray(Float32Array.from(values)),
      grad: kernels.heap.fromArray(Float32Array.from(grad)),
    };
  }

  test("SGD with a constant gradient follows torch's recurrences", () => {
    const lr = 0.1;
    const g = 0.5;
    const w0 = 2;
    for (const [mu, damp, nesterov, wd] of [
      [0, 0, false, 0],
      [0.9, 0, false, 0],
      [0.9, 0.1, false, 0],
      [0.9, 0, true, 0],
    ] as const) {
      const p = makeParam("w", [w0], [g]);
      const opt = createOptimizer(kernels, [p], {
        kind: "sgd",
        momentum: mu,
        dampening: damp,
        nesterov,
        weightDecay: wd,
      });
      // float64 closed form of the recurrences: buf_1 = g, buf_k = mu buf_{k-1} + (1 - damp) g
      let buf = 0;
      let w = w0;
      for (let k = 1; k <= 5; k++) {
        opt.update(lr);
        if (mu === 0) w -= lr * g;
        else {
          buf = k === 1 ? g : mu * buf + (1 - damp) * g;
          w -= lr * (nesterov ? g + mu * buf : buf);
        }
        expect(
          Math.abs(p.param.f32()[0] - w),
          `mu ${mu} damp ${damp} nesterov ${nesterov} step ${k}`,
        ).toBeLessThanOrEqual(1e-6);
      }
      opt.dispose();
    }
  });

  test("SGD weight decay adds wd * p to the gradient", () => {
    const p = makeParam("w", [3], [0]);
    const opt = createOptimizer(kernels, [p], { kind: "sgd", weightDecay: 0.1 });
    opt.update(0.5);
    expect(p.param.f32()[0]).toBeCloseTo(3 - 0.5 * 0.1 * 3, 6);
    opt.dispose();
  });

  test("AdamW first step moves every parameter by lr against its gradient's sign", () => {
    // step 1: mhat = g, vhat = g^2, update = lr * g / (|g| + eps)
    const p = makeParam("w", [1, -1, 0.5], [0.3, -2, 1e-3]);
    const opt = createOptimizer(kernels, [p], { kind: "adamw", weightDecay: 0 });
    opt.update(0.01);
    const want = [
      1 - 0.01 * (0.3 / (0.3 + 1e-8)),
      -1 + 0.01 * (2 / (2 + 1e-8)),
      0.5 - 0.01 * (1e-3 / (1e-3 + 1e-8)),
    ];
    expect(maxMixedError(Array.from(p.param.f32()), want)).toBeLessThanOrEqual(1e-6);
    opt.dispose();
  });

  test.each(["adamw", "sgd"] as const)("%s state save/load continues identically", (kind) => {
    const rng = new Rng(3);
    const init = Array.from({ length: 10 }, () => rng.normal());
    const grads = Array.from({ length: 4 }, () => Array.from({ length: 10 }, () => rng.normal()));
    const config =
      kind === "adamw"
        ? ({ kind, weightDecay: 0.01 } as const)
        : ({ kind, momentum: 0.9 } as const);
    const a = makeParam("w", init, grads[0]);
    const optA = createOptimizer(kernels, [a], config);
    for (const g of grads) {
      a.grad.f32().set(g);
      optA.update(0.01);
    }
    const b = makeParam("w", init, grads[0]);
    const optB = createOptimizer(kernels, [b], config);
    for (const g of grads.slice(0, 2)) {
      b.grad.f32().set(g);
      optB.update(0.01);
    }
    const saved = optB.state();
    const savedParams = b.param.toArray();
    optB.dispose();
    const c = makeParam("w", Array.from(savedParams), grads[0]);
    const optC = createOptimizer(kernels, [c], config);
    optC.loadState(saved);
    expect(optC.step).toBe(2);
    for (const g of grads.slice(2)) {
      c.grad.f32().set(g);
      optC.update(0.01);
    }
    expect(Array.from(c.param.f32())).toEqual(Array.from(a.param.f32()));
    const other = makeParam("v", init, grads[0]);
    const optD = createOptimizer(kernels, [other], config);
    expect(() => optD.loadState(saved)).toThrow(/unexpected tensor|missing/);
    for (const o of [optA, optC, optD]) o.dispose();
  });

  test("clipGradNorm: torch's coefficient max_norm / (norm + 1e-6), clamped to 1", () => {
    const g1 = kernels.heap.fromArray(Float32Array.from([3, 0]));
    const g2 = kernels.heap.fromArray(Float32Array.from([0, 4, 0]));
    expect(globalGradNorm(kernels, [g1, g2])).toBe(5);
    const total = clipGradNorm(kernels, [g1, g2], 1);
    expect(total).toBe(5);
    const coef = 1 / (5 + 1e-6);
    expect(g1.f32()[0]).toBeCloseTo(3 * coef, 6);
    expect(g2.f32()[1]).toBeCloseTo(4 * coef, 6);
    const before = g1.toArray();
    expect(clipGradNorm(kernels, [g1, g2], 10)).toBeCloseTo(1, 5); // under the limit: untouched
    expect(Array.from(g1.f32())).toEqual(Array.from(before));
  });
});
