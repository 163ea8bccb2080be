// getPeftModel / loadPeftModel / PeftModel behaviour not covered by the CLI workflow tests.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import { loadModel } from "../../src/models/model.js";
import { loadAdapter } from "../../src/peft/adapter-io.js";
import { LoraConfig } from "../../src/peft/config.js";
import { getPeftModel, loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { FixedBatches } from "../../src/train/data-order.js";
import { train } from "../../src/train/trainer.js";
import { expectAllclose } from "../helpers/allclose.js";

const MODEL = "test/fixtures/models/llama-gqa";
const ADAPTER = "test/fixtures/e2e/llama-gqa/converted"; // a plain rank-4 LoRA written by PEFT

describe("PeftModel.mergeAndUnload", () => {
  test("merging into a bf16 base equals merging into the f32 base up to bf16 rounding", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const f32 = await loadModel(MODEL, { kernels });
    (await loadPeftModel(f32, ADAPTER)).mergeAndUnload();
    const bf16 = await loadModel(MODEL, { kernels, weightDtype: "bf16" });
    (await loadPeftModel(bf16, ADAPTER)).mergeAndUnload();
    for (const path of ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"]) {
      expect(bf16.weightStorage(path)).toBe("bf16");
      const expected = f32.readLinearWeight(path);
      const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expectAllclose(bf16.readLinearWeight(path), expected, {
        rtol: 2 ** -8,
        atol: 2 ** -9 * scale,
        label: path,
      });
    }
    const untouched = "model.layers.0.self_attn.k_proj"; // not a target: unchanged
    const base = await loadModel(MODEL, { kernels });
    expect(f32.readLinearWeight(untouched)).toEqual(base.readLinearWeight(untouched));
    await kernels.dispose();
  });
});

describe("getPeftModel", () => {
  test("lora_ga without gradients, and gradients missing a target, are clear errors", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const model = await loadModel(MODEL, { kernels });
    const config = new LoraConfig({
      r: 2,
      target_modules: ["q_proj"],
      init_lora_weights: "lora_ga",
    });
    expect(() => getPeftModel(model, config)).toThrow(
      /init "lora_ga" needs gradients: run estimateGradient/,
    );
    expect(() => getPeftModel(model, config, { namedGrad: new Map() })).toThrow(
      /no gradient for target module model\.layers\.0\.self_attn\.q_proj/,
    );
    await kernels.dispose();
  });

  test("default LoRA leaves the base and the logits as they are, and records no offset", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const model = await loadModel(MODEL, { kernels });
    const batch = { batchSize: 1, seqLen: 5, inputIds: Int32Array.from([1, 5, 9, 13, 17]) };
    const before = model.forward(batch).toArray();
    const peft = getPeftModel(
      model,
      new LoraConfig({ r: 2, target_modules: ["q_proj", "v_proj"] }),
      { seed: 3 },
    );
    expect(peft.initial).toBeNull();
    expect(peft.initRecord.offset_base).toBe(false);
    expect(model.forward(batch).toArray()).toEqual(before); // B = 0
    await expect(peft.save("/tmp/never", { convert: true })).rejects.toThrow(
      /convert needs an init that offset the base/,
    );
    await kernels.dispose();
  });
});

describe("PeftModel owns its adapters through training", () => {
  const batch = {
    batchSize: 1,
    seqLen: 6,
    inputIds: Int32Array.from([1, 5, 9, 13, 17, 21]),
    labels: Int32Array.from([1, 5, 9, 13, 17, 21]),
  };

  test("an offset init trains, saves `trained`, reloads with its init adapter, disposes once", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const dir = await mkdtemp(join(tmpdir(), "loraga-peft-owner-"));
    try {
      const model = await loadModel(MODEL, { kernels });
      const config = new LoraConfig({
        r: 2,
        target_modules: ["q_proj", "v_proj"],
        init_lora_weights: "pissa",
      });
      const peft = getPeftModel(model, config, { seed: 1, svd: { method: "exact" } });
      expect(peft.initial).not.toBeNull(); // PiSSA offsets the base
      await peft.save(join(dir, "init"));
      const result = await train(peft, new FixedBatches([batch]), { steps: 3, lr: 1e-2 });
      expect(result.losses[2]).toBeLessThan(result.losses[0]);
      expect(peft.trained).toBe(true);
      await peft.save(join(dir, "trained"));
      const initRecord = (await loadAdapter(join(dir, "init"), model.linears())).init;
      const trainedRecord = (await loadAdapter(join(dir, "trained"), model.linears())).init;
      expect(initRecord?.trained).toBeUndefined();
      expect(trainedRecord).toEqual({ ...initRecord, trained: true });
      const logits = model.forward(batch).toArray();

      // the trained factors are not an init: the offset base comes from the init adapter only
      const fresh = await loadModel(MODEL, { kernels });
      await expect(loadPeftModel(fresh, join(dir, "trained"))).rejects.toThrow(
        /trained on an offset base/,
      );
      await loadPeftModel(fresh, join(dir, "trained"), { initAdapterDir: join(dir, "init") });
      expectAllclose(fresh.forward(batch).toArray(), logits, { rtol: 1e-5, atol: 1e-5 });

      // dispose detaches and frees every adapter (the base keeps W'); a second dispose does nothing
      const offsetOnly = await loadModel(MODEL, { kernels });
      getPeftModel(offsetOnly, config, { seed: 1, svd: { method: "exact" } }).dispose();
      const inUse = kernels.heap.bytesInUse;
      peft.dispose();
      expect(peft.adapters.size).toBe(0);
      expect(kernels.heap.bytesInUse).toBeLessThan(inUse);
      peft.dispose();
      expect(model.forward(batch).toArray()).toEqual(offsetOnly.forward(batch).toArray());
    } finally {
      await rm(dir, { recursive: true, force: true });
      await kernels.dispose();
    }
  });

  test("a loaded adapter with dropout infers in evaluation mode (no dropout)", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const dir = await mkdtemp(join(tmpdir(), "loraga-peft-eval-"));
    try {
      const plain = await loadModel(MODEL, { kernels });
      const loaded = await loadAdapter(ADAPTER, plain.linears());
      const noDropout = loaded.config.with({ lora_dropout: 0 });
      getPeftModel(plain, noDropout, { weights: loaded.weights });
      const expected = plain.forward(batch).toArray(); // the adapter's exact output
      const withDropout = loaded.config.with({ lora_dropout: 0.5 });
      const model = await loadModel(MODEL, { kernels });
      const trainable = getPeftModel(model, withDropout, { weights: loaded.weights });
      expect(model.forward(batch).toArray()).not.toEqual(expected); // training mode drops
      trainable.dispose();
      await getPeftModel(model, withDropout, { weights: loaded.weights }).save(dir);
      const frozen = await loadPeftModel(model, dir);
      expect(frozen.config.lora_dropout).toBe(0.5);
      expectAllclose(model.forward(batch).toArray(), expected, { rtol: 1e-6, atol: 1e-6 });
    } finally {
      await rm(dir, { recursive: true, force: true });
      await kernels.dispose();
    }
  });

  test("a frozen PeftModel (loadPeftModel's default) is refused by the trainer", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const model = await loadModel(MODEL, { kernels });
    const peft = await loadPeftModel(model, ADAPTER);
    await expect(train(peft, new FixedBatches([batch]), { steps: 1, lr: 1e-3 })).rejects.toThrow(
      /lora_A\.weight is frozen/,
    );
    await kernels.dispose();
  });
});
