// Helpers for tests that run one kernel on the reference engine and on another (WebGPU) with the
// same inputs: seeded random heap tensors, "twins" (two tensors with the same random contents,
// one for each engine to write into: accumulating kernels then start from the same values) and
// a comparison that downloads the other engine's results first. `engines` is read at each call,
// so a test file can fill it in beforeAll. Also the norm kernels' twin run, shared by the WebGPU
// kernel tests with and without subgroups.

import type { Kernels } from "../../src/kernels/kernels.js";
import type { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { expectAllclose } from "./allclose.js";
import { randomUniform } from "./random.js";

/** The heap both engines share, the reference engine and the engine under test. */
export interface TwinEngines {
  heap: Heap;
  ref: Kernels;
  other: Kernels;
}

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

export interface TwinKit {
  /** The engines, once set (throws before). */
  engines(): TwinEngines;
  /** A tensor of uniform values in [-range, range), from the next seed. */
  rand(shape: number[], range?: number): Tensor;
  /** [reference's, other's]: two tensors with the same random contents. */
  twins(shape: number[]): [Tensor, Tensor];
  /** Downloads the other engine's tensors and compares each with the reference's. */
  expectSame(label: string, pairs: [Tensor, Tensor][], tol?: Tolerance): Promise<void>;
}

export function twinKit(engines: Partial<TwinEngines>): TwinKit {
  let seed = 1;
  const get = (): TwinEngines => {
    const { heap, ref, other } = engines;
    if (heap === undefined || ref === undefined || other === undefined)
      throw new Error("twinKit used before its engines were set");
    return { heap, ref, other };
  };
  const rand = (shape: number[], range = 1): Tensor => {
    const n = shape.reduce((x, y) => x * y, 1);
    return get().heap.fromArray(randomUniform(n, seed++, range), shape);
  };
  const twins = (shape: number[]): [Tensor, Tensor] => {
    const a = rand(shape);
    const b = get().heap.tensor(shape);
    b.f32().set(a.f32());
    return [a, b];
  };
  async function expectSame(label: string, pairs: [Tensor, Tensor][], tol: Tolerance = {}) {
    await get().other.download(...pairs.map((p) => p[1]));
    pairs.forEach(([want, got], i) => {
      expectAllclose(got.f32(), want.f32(), {
        label: `${label} #${i}`,
        rtol: tol.rtol ?? 2e-5,
        atol: tol.atol ?? 2e-6,
      });
    });
  }
  return { engines: get, rand, twins, expectSame };
}

/**
 * rmsnorm and layernorm (R, C) on both engines, then their backwards in each accumulate mode
 * (layernorm's also without parameter gradients), all compared with the reference's: the
 * backwards read the reference's saved statistics, so they test the backward alone.
 */
export async function expectNormTwins(kit: TwinKit, R: number, C: number): Promise<void> {
  const { ref, other } = kit.engines();
  const both = [ref, other];
  const { rand, twins, expectSame } = kit;
  const x = rand([R, C], 3);
  const weight = rand([C]);
  const bias = rand([C]);
  const dy = rand([R, C]);
  const out = twins([R, C]);
  const rstd = twins([R]);
  const lnOut = twins([R, C]);
  const mean = twins([R]);
  const lnRstd = twins([R]);
  for (const [i, k] of both.entries()) {
    k.rmsnorm(out[i], rstd[i], x, weight, 1e-6);
    k.layernorm(lnOut[i], mean[i], lnRstd[i], x, weight, bias, 1e-5);
  }
  await expectSame(`norms ${R}x${C}`, [out, rstd, lnOut, mean, lnRstd]);
  const pairs: [Tensor, Tensor][] = [];
  for (const accumulate of [true, false]) {
    const dx = twins([R, C]);
    const dw = twins([C]);
    const lnDx = twins([R, C]);
    const lnDw = twins([C]);
    const lnDb = twins([C]);
    const lnDxOnly = twins([R, C]);
    for (const [i, k] of both.entries()) {
      k.rmsnormBackward(dx[i], dw[i], dy, x, weight, rstd[0], { accumulate });
      k.layernormBackward(lnDx[i], lnDw[i], lnDb[i], dy, x, weight, mean[0], lnRstd[0], {
        accumulate,
      });
      k.layernormBackward(lnDxOnly[i], null, null, dy, x, weight, mean[0], lnRstd[0], {
        accumulate,
      });
    }
    pairs.push(dx, dw, lnDx, lnDw, lnDb, lnDxOnly);
  }
  await expectSame(`norm backwards ${R}x${C}`, pairs, { rtol: 1e-4, atol: 1e-5 });
}
