// End to end on the tiny model fixtures (test/fixtures/models): estimate one batch's weight
// gradients G with CausalLM.lossAndGrads, attach LoRA-GA adapters with applyLora, and check
// (1) the adapted model computes the same loss as before (W' + s B A == W,
//     docs/lora-ga-spec.md §2 step 4),
// (2) the first LoRA gradients through the real model are those of docs/lora-ga-spec.md §2.1:
//     dB = s G A^T and dA = s B^T G, with G taken in (out, in) layout (GPT-2 Conv1D exercises
//     fan_in_fan_out),
// (3) the model's weights were offset by exactly s B0 A0 and the initial factors are returned.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { type Batch, loadModel } from "../../src/models/model.js";
import { applyLora, detachAdapters } from "../../src/peft/apply.js";
import { LoraGAConfig, loraScaling } from "../../src/peft/config.js";
import type { GradientEntry } from "../../src/peft/gradient-cache.js";
import { selectTargets } from "../../src/peft/targets.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";
import { maxAbs, maxAbsDiff, mm, outIn, transpose } from "./peft-fixtures.js";

const MODELS = join(import.meta.dirname, "..", "fixtures", "models");

function readBatch(name: string): Batch {
  const j = JSON.parse(readFileSync(join(MODELS, name, "batch.json"), "utf8")) as {
    batch_size: number;
    seq_len: number;
    input_ids: number[];
    attention_mask: number[];
    labels: number[];
  };
  return {
    batchSize: j.batch_size,
    seqLen: j.seq_len,
    inputIds: Int32Array.from(j.input_ids),
    attentionMask: Int32Array.from(j.attention_mask),
    labels: Int32Array.from(j.labels),
  };
}

describe.each([
  { name: "llama-gqa", targets: ["q_proj", "v_proj", "down_proj"] },
  { name: "gpt2", targets: ["c_attn", "c_fc"] },
])("applyLora with LoRA-GA on $name", ({ name, targets }) => {
  test("function-preserving init and first-step LoRA gradients", async () => {
    const kernels = createRefKernels(new Heap({ initialBytes: 32 * 2 ** 20 }));
    const model = await loadModel(join(MODELS, name), { kernels });
    const batch = readBatch(name);
    const config = new LoraGAConfig({
      r: 2,
      lora_alpha: 8,
      target_modules: targets,
      use_rslora: true,
      scale: "stable",
    });
    const infos = selectTargets(config, model.linears());
    const paramGrads = new Map<string, Tensor>(
      infos.map((l) => [
        l.weightName,
        kernels.heap.zeros((model.params.get(l.weightName) as Tensor).shape),
      ]),
    );
    const loss0 = model.lossAndGrads(batch, { paramGrads }).loss;
    const grads = new Map<string, GradientEntry>(
      infos.map((l) => {
        const g = paramGrads.get(l.weightName) as Tensor;
        return [l.path, { shape: [g.shape[0], g.shape[1]] as [number, number], data: g.toArray() }];
      }),
    );
    const w0 = new Map(
      infos.map((l) => [l.path, (model.params.get(l.weightName) as Tensor).toArray()]),
    );
    const applied = applyLora(model, config, { rng: new Rng(1), grads, svd: { method: "exact" } });
    const s = loraScaling(8, 2, true);
    const loss1 = model.lossAndGrads(batch).loss;
    expect(Math.abs(loss1 - loss0)).toBeLessThan(1e-5 * Math.abs(loss0));
    expect(applied.offsetModules.sort()).toEqual(infos.map((l) => l.path).sort());
    for (const l of infos) {
      const { inFeatures: n, outFeatures: m, fanInFanOut } = l;
      const layer = applied.layers.get(l.path);
      if (layer === undefined) throw new Error(`no layer for ${l.path}`);
      const A = layer.A.toArray();
      const B = layer.B.toArray();
      const G = outIn((grads.get(l.path) as GradientEntry).data, m, n, fanInFanOut);
      const dBexp = mm(G, transpose(A, 2, n), m, n, 2).map((v) => s * v);
      const dAexp = mm(transpose(B, m, 2), G, 2, m, n).map((v) => s * v);
      expect(maxAbsDiff(layer.dB?.toArray() ?? [], dBexp) / maxAbs(dBexp)).toBeLessThan(1e-3);
      expect(maxAbsDiff(layer.dA?.toArray() ?? [], dAexp) / maxAbs(dAexp)).toBeLessThan(1e-3);
      // W_model (stored layout) == W0 - s B0 A0
      const ba = mm(B, A, m, 2, n).map((v) => s * v);
      const w = outIn((model.params.get(l.weightName) as Tensor).toArray(), m, n, fanInFanOut);
      const before = outIn(w0.get(l.path) as Float32Array, m, n, fanInFanOut);
      expect(
        maxAbsDiff(
          w.map((v, i) => v + ba[i]),
          before,
        ),
      ).toBeLessThan(1e-6);
      expect(maxAbsDiff(applied.initial.get(l.path)?.A ?? [], A)).toBe(0);
    }
    detachAdapters(model, applied.layers);
    model.dispose();
  });
});
