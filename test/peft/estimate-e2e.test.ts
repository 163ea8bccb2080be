// estimateGradient on real checkpoints vs PEFT 0.21's preprocess_loraga on the same model and
// batches (fixtures: scripts/fixtures/make_loraga_e2e.py, make_tiny_archs.py for qwen3, smollm3,
// phi3: the fused qkv_proj / gate_up_proj gradients are the fused weights' gradients; make_tiny_t5.py
// for T5's seq2seq rows, batched through the seq2seq data path).
import { describe, expect, test } from "vitest";
import { collate, groupIntoBatches } from "../../src/data/batches.js";
import { loadExamples } from "../../src/data/dataset.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { createKernels } from "../../src/kernels/index.js";
import { loadModel } from "../../src/models/model.js";
import { LoraGAConfig } from "../../src/peft/config.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { selectTargets } from "../../src/peft/targets.js";
import { Heap } from "../../src/tensor/heap.js";
import { expectAllclose } from "../helpers/allclose.js";

const E2E = "test/fixtures/e2e";

const MODELS = ["llama-gqa", "gpt2", "qwen3", "smollm3", "phi3", "gemma3-bias"];

describe.each(MODELS)("estimateGradient on %s", (name) => {
  test("equals PEFT preprocess_loraga's gradients (mean over batches of batch-mean-loss gradients)", async () => {
    const heap = new Heap();
    const kernels = await createKernels("ref", { heap });
    const model = await loadModel(`test/fixtures/models/${name}`, { kernels });
    const examples = await loadExamples(`${E2E}/data.jsonl`, null);
    const batches = groupIntoBatches(examples, 2).map((g) =>
      collate(g, { maxLength: 10, padTokenId: 0 }),
    );
    const expected = await SafetensorsFile.open(`${E2E}/${name}/grads.safetensors`);
    const targets = [...expected.entries.keys()];
    const seen: number[] = [];
    const result = await estimateGradient(model, batches, {
      targets,
      onProgress: (p) => seen.push(p.done),
    });
    expect(result.batches).toBe(3);
    expect(seen).toEqual([1, 2, 3]);
    expect([...result.grads.keys()].sort()).toEqual(targets.sort());
    for (const path of targets) {
      const ours = result.grads.get(path);
      expect(ours?.shape).toEqual(expected.entries.get(path)?.shape);
      expectAllclose(ours?.data ?? new Float32Array(), await expected.readF32(path), {
        rtol: 1e-4,
        atol: 1e-4 * maxAbs(await expected.readF32(path)),
        label: `${name} ${path}`,
      });
    }
    await expected.close();
    model.dispose();
    await kernels.dispose();
  });
});

const T5_TARGETS: Record<string, string[]> = {
  t5: ["q", "k", "v", "o", "wi", "wo"],
  "t5-v1_1": ["q", "v", "wi_0", "wi_1", "wo"],
};

describe.each(["t5", "t5-v1_1"])("estimateGradient on %s (seq2seq rows)", (name) => {
  test("equals PEFT preprocess_loraga's gradients on every target of both stacks", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const model = await loadModel(`test/fixtures/models/${name}`, { kernels });
    const examples = await loadExamples(`${E2E}/t5-data.jsonl`, null, { seq2seq: true });
    const batches = groupIntoBatches(examples, 2).map((g) =>
      collate(g, { maxLength: 16, padTokenId: 0 }),
    );
    const expected = await SafetensorsFile.open(`${E2E}/${name}/grads.safetensors`);
    const targets = [...expected.entries.keys()];
    expect(targets.some((t) => t.startsWith("encoder.")) && targets.length > 30).toBe(true);
    // PEFT's target names select exactly the modules PEFT wrapped
    const config = new LoraGAConfig({
      r: 2,
      lora_alpha: 4,
      target_modules: T5_TARGETS[name],
      init_lora_weights: "lora_ga",
    });
    const selected = selectTargets(config, model.linears()).map((l) => l.path);
    expect(selected.sort()).toEqual([...targets].sort());
    const result = await estimateGradient(model, batches, { targets });
    expect(result.batches).toBe(3);
    for (const path of targets) {
      const want = await expected.readF32(path);
      expectAllclose(result.grads.get(path)?.data ?? new Float32Array(), want, {
        rtol: 1e-4,
        atol: 1e-4 * maxAbs(want),
        label: `${name} ${path}`,
      });
    }
    await expected.close();
    // LoRA-GA init offsets the base by s B A: the adapted model starts at the base's logits
    const before = model.forward(batches[0]).toArray();
    getPeftModel(model, config, { namedGrad: result.grads });
    expectAllclose(model.forward(batches[0]).toArray(), before, {
      rtol: 1e-4,
      atol: 1e-4 * maxAbs(before),
      label: `${name} logits after LoRA-GA init`,
    });
    model.dispose();
    await kernels.dispose();
  });
});

test("estimateGradient names a target that is not a linear layer", async () => {
  const heap = new Heap();
  const kernels = await createKernels("ref", { heap });
  const model = await loadModel("test/fixtures/models/llama-gqa", { kernels });
  await expect(estimateGradient(model, [], { targets: ["model.layers.0.nope"] })).rejects.toThrow(
    /"model\.layers\.0\.nope" is not a linear layer/,
  );
  await expect(
    estimateGradient(model, [], { targets: ["model.layers.0.self_attn.q_proj"] }),
  ).rejects.toThrow(/no batches/);
  model.dispose();
});

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}
