// LoRA training on a bf16 frozen base with the native engine's bf16 GEMM (Kernels.bf16Matmul:
// activations and output gradients rounded to bf16 at each base-layer product, as PyTorch's bf16
// matmul does), 3 SGD steps, against two other runs of the same training:
//   - the oracle: the ref engine with a matmul that rounds op(a) to bf16 (tensor/dtype.ts) and
//     multiplies by the weight widened to f32, i.e. the same numerics computed independently.
//     The two differ only in f32 summation order, which can flip a later bf16 rounding now and
//     then, so the bf16 kernel must be within a tenth of its distance to the next run (it
//     computes what the oracle computes, not merely something bf16-sized);
//   - the weights expanded to f32 first (bf16: false, today's path on every engine): the bf16
//     kernel must differ from it (it ran), by at most 8 times the bf16-weight rounding's own
//     effect (bf16 vs f32 base, expanded; measured here). Activations are rounded at about as
//     many places as weights per forward pass, and the backward's output gradients again.
// Compared: the loss of each step, the LoRA gradients of the first and the adapter after the last.
// Models: llama-gqa (weights (out, in)) and gpt2 (Conv1D weights (in, out): the other transposes).

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, MatmulOptions } from "../../src/kernels/kernels.js";
import { loadNativeAddon } from "../../src/kernels/native/addon.js";
import { createNativeKernels } from "../../src/kernels/native/index.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { bf16ToF32, f32ToBf16 } from "../../src/tensor/dtype.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";
import { MODEL_FIXTURES, relErr } from "../helpers/model-fixtures.js";
import { attachRandomLora } from "../helpers/random-lora.js";

const loaded = loadNativeAddon();
/** Whether the native engine here has the bf16 kernels (AVX512-BF16). */
async function nativeHasBf16(): Promise<boolean> {
  if (!("addon" in loaded)) return false;
  const heap = new Heap({ initialBytes: 2 ** 20 });
  const kernels = await createNativeKernels(heap, { threads: 1 });
  const has = kernels.bf16Matmul;
  await kernels.dispose();
  return has;
}
const HAS_BF16 = await nativeHasBf16();

const STEPS = 3;
const LR = 0.2;

interface Run {
  losses: number[];
  /** gradients of the first step and the adapter after the last, every LoRA matrix concatenated */
  grads: Float32Array;
  adapter: Float32Array;
}

function batchOf(vocab: number): Batch {
  const rng = new Rng(7);
  const inputIds = Int32Array.from({ length: 2 * 9 }, () => rng.below(vocab));
  return { batchSize: 2, seqLen: 9, inputIds, labels: inputIds.slice() };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** STEPS steps of plain SGD on random LoRA adapters (same seed every run) on every linear. */
function train(model: CausalLM, kernels: Kernels): Run {
  const batch = batchOf((model.config as { vocab_size: number }).vocab_size);
  const lora = attachRandomLora(model, kernels);
  try {
    const params = lora.adapters.flatMap((a) => a.parameters());
    const losses: number[] = [];
    let grads: Float32Array = new Float32Array(0);
    for (let step = 0; step < STEPS; step++) {
      for (const a of lora.adapters) a.zeroGrad();
      losses.push(model.lossAndGrads(batch).loss);
      if (step === 0) grads = concat(params.map((p) => (p.grad as Tensor).toArray()));
      for (const p of params) kernels.axpy(p.param, p.grad as Tensor, -LR);
    }
    return { losses, grads, adapter: concat(params.map((p) => p.param.toArray())) };
  } finally {
    lora.detach();
  }
}

/** `ref` with a bf16 matmul by definition: op(a) alpha rounded to bf16, b widened exactly. */
function bf16Oracle(ref: Kernels): Kernels {
  const heap = ref.heap;
  function matmul(out: Tensor, a: Tensor, b: Tensor, options: MatmulOptions = {}): void {
    if (b.dtype !== "bf16") {
      ref.matmul(out, a, b, options);
      return;
    }
    const alpha = options.alpha ?? 1;
    const rounded = heap.fromArray(
      a.toArray().map((v) => bf16ToF32(f32ToBf16(Math.fround(alpha * v)))),
      a.shape,
    );
    const wide = heap.fromArray(Array.from(b.u16(), bf16ToF32), b.shape);
    try {
      ref.matmul(out, rounded, wide, { ...options, alpha: 1 });
    } finally {
      rounded.dispose();
      wide.dispose();
    }
  }
  return new Proxy(ref, {
    get(target, key) {
      if (key === "matmul") return matmul;
      if (key === "bf16Matmul") return true;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe.skipIf(!HAS_BF16)("LoRA on a bf16 base: the native bf16 GEMM", () => {
  let on: Kernels;
  let off: Kernels;
  let oracle: Kernels;
  beforeAll(async () => {
    oracle = bf16Oracle(await createKernels("ref", { heap: new Heap() }));
    // one native Kernels per heap
    on = await createNativeKernels(new Heap({ initialBytes: 16 * 2 ** 20 }), { threads: 2 });
    off = await createNativeKernels(new Heap({ initialBytes: 16 * 2 ** 20 }), {
      threads: 2,
      bf16: false,
    });
  });
  afterAll(async () => {
    await on.dispose();
    await off.dispose();
    await oracle.dispose();
  });

  test.each(["llama-gqa", "gpt2"])(
    "%s: the bf16 kernel computes the oracle's numerics, near the f32-expanded path",
    async (name) => {
      const dir = join(MODEL_FIXTURES, name);
      const runs: Record<"kernel" | "oracle" | "expanded" | "f32", Run> = {} as never;
      for (const [key, kernels, weightDtype] of [
        ["kernel", on, "bf16"],
        ["oracle", oracle, "bf16"],
        ["expanded", off, "bf16"],
        ["f32", off, "f32"],
      ] as const) {
        const model = await loadModel(dir, { kernels, weightDtype });
        try {
          expect(model.weightStorage(model.linears()[0].path)).toBe(weightDtype);
          runs[key] = train(model, kernels);
        } finally {
          model.dispose();
        }
      }
      const gap = (a: Run, b: Run) => ({
        loss: Math.max(
          ...a.losses.map((l, i) => Math.abs(l - b.losses[i]) / Math.abs(b.losses[i])),
        ),
        grads: relErr(a.grads, b.grads).rel,
        adapter: relErr(a.adapter, b.adapter).rel,
      });
      const oracleGap = gap(runs.kernel, runs.oracle);
      const kernelGap = gap(runs.kernel, runs.expanded);
      const weightGap = gap(runs.expanded, runs.f32);
      console.log(
        `${name}: bf16 kernel vs oracle ${JSON.stringify(oracleGap)}, vs expanded ${JSON.stringify(kernelGap)}; bf16 vs f32 weights ${JSON.stringify(weightGap)}`,
      );
      for (const what of ["loss", "grads", "adapter"] as const) {
        expect(oracleGap[what], what).toBeLessThanOrEqual(0.1 * kernelGap[what]);
        expect(kernelGap[what], what).toBeGreaterThan(0);
        expect(kernelGap[what], what).toBeLessThanOrEqual(8 * weightGap[what]);
      }
    },
  );
});
