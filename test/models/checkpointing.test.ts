// Gradient checkpointing (MemoryOptions.gradient_checkpointing): each layer's forward recomputed
// from its saved input right before its backward. On every tiny test model and both engines, a
// checkpointed lossAndGrads must give bit-for-bit the loss and gradients of the plain one — the
// recompute repeats the same kernel calls on the same inputs — with:
//   - full fine-tuning (every parameter's gradient and inputs_embeds' gradient),
//   - LoRA adapters on every linear, without and with dropout (masks replayed, not redrawn),
//   - the lm_head in chunks at the same time;
// the plain run itself is checked against PyTorch's float64 gradients (test/fixtures/models).
// Also: the engine's peak memory is lower, and LoRA-GA gradient estimation gives the same result.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { DEFAULT_LOGITS_CHUNK_BYTES } from "../../src/models/lm-head.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { MODEL_FIXTURES, readModelFixture, relErr } from "../helpers/model-fixtures.js";
import { attachRandomLora } from "../helpers/random-lora.js";

const MODELS = [
  "llama-gqa",
  "llama-tied",
  "mistral",
  "qwen2",
  "gpt2",
  "qwen3",
  "smollm3",
  "phi3",
  "gemma3",
  "gemma3-bias",
];
const KERNELS: KernelsName[] = ["ref", "wasm"];

interface Step {
  loss: number;
  tokens: number;
  grads: Map<string, Float32Array>;
}

type Mode = "full" | "lora" | "lora-dropout";

function hiddenOf(model: CausalLM): number {
  const c = model.config as { hidden_size?: number; n_embd?: number };
  return (c.hidden_size ?? c.n_embd) as number;
}

/** One training step under the given memory options; fresh adapters (same seed) in LoRA modes. */
function trainStep(
  model: CausalLM,
  kernels: Kernels,
  batch: Batch,
  mode: Mode,
  memory: { gradient_checkpointing: boolean; logitsChunkBytes?: number },
): Step {
  model.setMemoryOptions({ logitsChunkBytes: DEFAULT_LOGITS_CHUNK_BYTES, ...memory });
  const grads = new Map<string, Float32Array>();
  if (mode === "full") {
    const tensors = new Map<string, Tensor>();
    for (const [name, p] of model.params) tensors.set(name, kernels.heap.zeros(p.shape));
    const embedsGrad = kernels.heap.zeros([batch.batchSize, batch.seqLen, hiddenOf(model)]);
    try {
      const result = model.lossAndGrads(batch, {
        paramGrads: tensors,
        inputsEmbedsGrad: embedsGrad,
      });
      for (const [name, g] of tensors) grads.set(name, g.toArray());
      grads.set("inputs_embeds", embedsGrad.toArray());
      return { ...result, grads };
    } finally {
      for (const g of tensors.values()) g.dispose();
      embedsGrad.dispose();
    }
  }
  const lora = attachRandomLora(model, kernels, mode === "lora-dropout" ? { dropout: 0.25 } : {});
  try {
    const result = model.lossAndGrads(batch);
    for (const a of lora.adapters)
      for (const p of a.parameters()) grads.set(p.name, (p.grad as Tensor).toArray());
    return { ...result, grads };
  } finally {
    lora.detach();
  }
}

describe.each(KERNELS)("gradient checkpointing (%s kernels)", (kernelsName) => {
  let kernels: Kernels;
  beforeAll(async () => {
    kernels = await createKernels(kernelsName, {
      heap: new Heap({ initialBytes: 16 * 2 ** 20 }),
      threads: 2,
    });
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  describe.each(MODELS)("%s", (name) => {
    let model: CausalLM;
    beforeAll(async () => {
      model = await loadModel(join(MODEL_FIXTURES, name), { kernels });
    });
    afterAll(() => model.dispose());

    const cases: { how: string; mode: Mode; chunked: boolean }[] = [
      { how: "full fine-tuning", mode: "full", chunked: false },
      { how: "LoRA on every linear", mode: "lora", chunked: false },
      { how: "LoRA with dropout (masks replayed)", mode: "lora-dropout", chunked: false },
      { how: "full fine-tuning, lm_head in chunks", mode: "full", chunked: true },
      { how: "LoRA with dropout, lm_head in chunks", mode: "lora-dropout", chunked: true },
    ];
    test.each(cases)("same loss and gradients: $how", async ({ mode, chunked }) => {
      const { batch, values } = await readModelFixture(name);
      const chunk = chunked ? { logitsChunkBytes: 3 * 4 * model.config.vocab_size } : {};
      const plain = trainStep(model, kernels, batch, mode, { gradient_checkpointing: false });
      const ckpt = trainStep(model, kernels, batch, mode, {
        gradient_checkpointing: true,
        ...chunk,
      });
      const again = chunked
        ? trainStep(model, kernels, batch, mode, { gradient_checkpointing: false, ...chunk })
        : plain;
      model.setMemoryOptions({ gradient_checkpointing: false });
      expect(ckpt.tokens).toBe(plain.tokens);
      expect(ckpt.loss).toBe(again.loss);
      expect([...ckpt.grads.keys()]).toEqual([...again.grads.keys()]);
      for (const [pname, g] of ckpt.grads) {
        const want = again.grads.get(pname) as Float32Array;
        const { rel, at } = relErr(g, want);
        expect(rel, `grad ${pname}: max rel diff ${rel} at ${at}`).toBe(0);
      }
      if (mode !== "full") return;
      // the reference run against PyTorch, so "same as plain" means "right"
      const wantLoss = (values.get("loss") as Float32Array)[0];
      expect(Math.abs(ckpt.loss - wantLoss) / wantLoss).toBeLessThanOrEqual(1e-5);
      for (const [pname, g] of ckpt.grads) {
        const want = values.get(`grad.${pname}`);
        if (pname === "inputs_embeds") continue; // input-grad.test.ts checks it against PyTorch
        expect(want, `fixture gradient of ${pname}`).toBeDefined();
        expect(relErr(g, want as Float32Array).rel, `grad ${pname}`).toBeLessThanOrEqual(1e-4);
      }
    });

    test("the engine's peak memory is lower", async () => {
      const { batch } = await readModelFixture(name);
      const peak = (checkpointing: boolean): number => {
        model.setMemoryOptions({ gradient_checkpointing: checkpointing }); // frees the plan
        kernels.heap.resetPeak();
        model.lossAndGrads(batch);
        return kernels.heap.peakBytes;
      };
      const plain = peak(false);
      const ckpt = peak(true);
      model.setMemoryOptions({ gradient_checkpointing: false });
      expect(ckpt).toBeLessThan(plain);
    });
  });

  test("LoRA-GA gradient estimation gives the same gradients", async () => {
    const model = await loadModel(join(MODEL_FIXTURES, "qwen2"), { kernels });
    try {
      const { batch } = await readModelFixture("qwen2");
      const targets = model
        .linears()
        .map((l) => l.path)
        .filter((p) => p !== "lm_head");
      const plain = await estimateGradient(model, [batch, batch], { targets });
      model.setMemoryOptions({ gradient_checkpointing: true });
      const ckpt = await estimateGradient(model, [batch, batch], { targets });
      expect(ckpt.meanLoss).toBe(plain.meanLoss);
      for (const path of targets) {
        const g = ckpt.grads.get(path)?.data as Float32Array;
        expect(relErr(g, plain.grads.get(path)?.data as Float32Array).rel, path).toBe(0);
      }
      expect(ckpt.memory.peakBytes).toBeLessThan(plain.memory.peakBytes);
    } finally {
      model.dispose();
    }
  });
});
