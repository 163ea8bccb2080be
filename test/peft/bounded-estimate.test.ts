// Bounded gradient estimation: one forward/backward per batch, bitwise the gradients of plain
// estimation, peak engine memory within weights + activations + the budget (+10%), a clear error for a budget
// below one gradient, and a model whose f32 weights + gradients do not fit the engine memory getting
// a LoRA-GA init through 16-bit weights + bounded estimation (synthetic config).
import { describe, expect, test, vi } from "vitest";
import { collate, groupIntoBatches } from "../../src/data/batches.js";
import { loadExamples } from "../../src/data/dataset.js";
import { createKernels } from "../../src/kernels/index.js";
import { createLlama, llamaParamSpecs } from "../../src/models/llama.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../../src/models/random.js";
import { LoraGAConfig } from "../../src/peft/config.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { Heap, HeapExhaustedError } from "../../src/tensor/heap.js";
import { Rng } from "../../src/util/random.js";
import { maxRelDiff } from "../helpers/allclose.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

async function fixtureBatches(): Promise<Batch[]> {
  const examples = await loadExamples("test/fixtures/e2e/data.jsonl", null);
  return groupIntoBatches(examples, 2).map((g) => collate(g, { maxLength: 10, padTokenId: 0 }));
}

function targetsOf(model: CausalLM): string[] {
  return model
    .linears()
    .filter((l) => l.path !== "lm_head")
    .map((l) => l.path);
}

describe.each([
  ["llama-gqa", false, "ref"],
  ["gpt2", false, "ref"],
  ["llama-tied", true, "ref"], // lm_head targeted: its weight is the embedding, kept on the heap
  ["llama-gqa", false, "wasm"],
  ...NATIVE_ENGINES.map((engine) => ["llama-gqa", false, engine] as const),
] as const)("bounded estimation on %s (lm_head: %s, %s kernels)", (name, withHead, engine) => {
  test("one forward/backward per batch, the plain sums bitwise; peak <= weights + activations + budget (+10%)", async () => {
    const heap = new Heap();
    const kernels = await createKernels(engine, { heap });
    const model = await loadModel(`test/fixtures/models/${name}`, { kernels });
    const batches = await fixtureBatches();
    const targets = withHead ? model.linears().map((l) => l.path) : targetsOf(model);
    // independent measure of the activations: one pass without weight gradients
    const weights = heap.bytesInUse;
    heap.resetPeak();
    model.lossAndGrads(batches[0]);
    const activations = heap.peakBytes - weights;

    const plain = await estimateGradient(model, batches, { targets });
    expect(plain.memory.passes).toBe(batches.length);
    expect(plain.memory.movedOutBytes).toBe(0); // unbounded: every sum stays on the heap
    const sizes = [...plain.grads.values()].map((g) => g.data.length * 4);
    // a budget of two of the largest gradients (plus a tied head's) moves sums off the heap
    const head = withHead ? (plain.grads.get("lm_head")?.data.length ?? 0) * 4 : 0;
    const budget = 2 * Math.max(...sizes) + head + 128;
    async function* oneShot(): AsyncGenerator<Batch> {
      yield* batches; // a one-shot source is enough: nothing is replayed
    }
    const passes = vi.spyOn(model, "lossAndGrads");
    const seen: number[] = [];
    const bounded = await estimateGradient(model, oneShot(), {
      targets,
      memoryBudget: budget,
      onProgress: (p) => seen.push(p.done),
    });
    expect(passes).toHaveBeenCalledTimes(batches.length);
    passes.mockRestore();
    expect(bounded.memory.passes).toBe(batches.length);
    expect(seen).toEqual(batches.map((_, i) => i + 1));
    expect(bounded.memory.heapGradBytes).toBeLessThanOrEqual(budget);
    expect(bounded.memory.movedOutBytes).toBeGreaterThan(0);
    expect(bounded.batches).toBe(plain.batches);
    expect(bounded.meanLoss).toBe(plain.meanLoss);
    expect([...bounded.grads.keys()]).toEqual(targets);
    for (const path of targets) {
      // same kernel calls on the same values: equal to the last bit
      expect(bounded.grads.get(path)?.data, path).toEqual(plain.grads.get(path)?.data);
    }
    const bound = (weights + activations + bounded.memory.heapGradBytes) * 1.1;
    expect(bounded.memory.peakBytes).toBeLessThanOrEqual(bound);
    // plain estimation holds every gradient at once
    const allGrads = sizes.reduce((s, b) => s + b, 0);
    expect(plain.memory.peakBytes).toBeGreaterThanOrEqual(weights + allGrads);
    console.log(
      `${name}: plain peak ${plain.memory.peakBytes} B, bounded peak ${bounded.memory.peakBytes} B ` +
        `(budget ${budget} B, ${bounded.memory.movedOutBytes} B moved off the heap, bound ${Math.round(bound)} B)`,
    );
    model.dispose();
    await kernels.dispose();
  });
});

test("a budget below one gradient names the module", async () => {
  const kernels = await createKernels("ref", { heap: new Heap() });
  const model = await loadModel("test/fixtures/models/llama-gqa", { kernels });
  await expect(
    estimateGradient(model, await fixtureBatches(), {
      targets: targetsOf(model),
      memoryBudget: 64,
    }),
  ).rejects.toThrow(
    /memoryBudget of 64 B is smaller than the gradient of model\.layers\.0\.self_attn\.q_proj/,
  );
  model.dispose();
});

describe("a model whose f32 weights + gradients exceed the engine memory", () => {
  const config = syntheticLlamaConfig({
    layers: 4,
    hidden: 256,
    intermediate: 688,
    heads: 4,
    vocab: 1000,
  });
  const specs = llamaParamSpecs(config);
  const maxBytes = 16 * 2 ** 20;
  const rng = new Rng(3);
  const ids = Int32Array.from({ length: 2 * 16 }, () => rng.below(config.vocab_size));
  const batches: Batch[] = [0, 1].map((b) => {
    const inputIds = ids.slice(b * 16, b * 16 + 16);
    return { batchSize: 1, seqLen: 16, inputIds, labels: inputIds.slice() };
  });

  test("plain f32 estimation runs out of engine memory", async () => {
    const kernels = await createKernels("ref", { heap: new Heap({ maxBytes }) });
    // the weights on the heap ("auto" would move them off it: they take most of the limit)
    const model = await createLlama(config, randomCheckpoint(specs, 1), kernels, "(synthetic)", {
      offloadFrozen: "off",
    });
    const targets = targetsOf(model);
    const linearBytes = model.linearWeightBytes().heap;
    expect(linearBytes * 2).toBeGreaterThan(maxBytes); // weights + one gradient per target weight
    await expect(estimateGradient(model, batches, { targets })).rejects.toBeInstanceOf(
      HeapExhaustedError,
    );
    model.dispose();
  });

  test("gets a LoRA-GA init with bf16 weights and bounded estimation", async () => {
    const heap = new Heap({ maxBytes });
    const kernels = await createKernels("ref", { heap });
    const model = await createLlama(config, randomCheckpoint(specs, 1), kernels, "(synthetic)", {
      weightDtype: "bf16",
    });
    const targets = targetsOf(model);
    expect(model.weightStorage(targets[0])).toBe("bf16");
    const weights = heap.bytesInUse;
    model.lossAndGrads(batches[0]); // plans the activations
    const activations = heap.bytesInUse - weights;
    const result = await estimateGradient(model, batches, { targets, memoryBudget: 2 * 2 ** 20 });
    expect(result.memory.movedOutBytes).toBeGreaterThan(0);
    expect(result.memory.peakBytes).toBeLessThanOrEqual(
      (weights + activations + result.memory.heapGradBytes) * 1.1,
    );
    const before = model.forward(batches[0]).toArray();
    const peft = getPeftModel(
      model,
      new LoraGAConfig({ r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj", "down_proj"] }),
      {
        namedGrad: result.grads,
      },
    );
    expect(peft.adapters.size).toBe(3 * config.num_hidden_layers);
    expect(peft.initial).not.toBeNull();
    // W' + s B0 A0 == W up to the bf16 rounding of W': the output is (nearly) unchanged
    const after = model.forward(batches[0]).toArray();
    expect(maxRelDiff(after, before)).toBeLessThan(2e-2);
    console.log(
      `synthetic llama (${(specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0) / 1e6).toFixed(1)}M params) in a ` +
        `${maxBytes / 2 ** 20} MiB engine: bf16 + bounded estimation peak ${result.memory.peakBytes} B; ` +
        `init logits rel change ${maxRelDiff(after, before).toExponential(2)}`,
    );
    peft.dispose();
    model.dispose();
  });
});
