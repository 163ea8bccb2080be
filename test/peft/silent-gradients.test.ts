// No silent no-learning in LoRA-GA: a batch without a learned token, and an all-zero gradient for a
// target (estimated, loaded from a cache, or passed in), are errors naming the batch or module.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { LoraGAConfig } from "../../src/peft/config.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import {
  type GradientMap,
  loadGradients,
  saveGradients,
  storedWeightShape,
} from "../../src/peft/gradient-cache.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { selectTargets } from "../../src/peft/targets.js";
import { Heap } from "../../src/tensor/heap.js";
import { tempDir } from "../helpers/cli.js";

let kernels: Kernels;
let model: CausalLM;
beforeAll(async () => {
  kernels = await createKernels("ref", { heap: new Heap() });
  model = await loadModel("test/fixtures/models/llama-gqa", { kernels });
});
afterAll(async () => {
  model.dispose();
  await kernels.dispose();
});

const config = () =>
  new LoraGAConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj"] });

/** Small random-looking gradients for every target, one of them (`zero`) all zeros. */
function gradients(zero: string): GradientMap {
  const grads: GradientMap = new Map();
  for (const info of selectTargets(config(), model.linears())) {
    const shape = storedWeightShape(info);
    const data = new Float32Array(shape[0] * shape[1]);
    if (info.path !== zero) for (let i = 0; i < data.length; i++) data[i] = Math.sin(i + 1) * 1e-2;
    grads.set(info.path, { shape, data });
  }
  return grads;
}

describe("LoRA-GA gradients", () => {
  test("a batch whose labels are all -100 is an error, not a zero gradient", async () => {
    const ids = Int32Array.from([1, 2, 3, 4]);
    const batch: Batch = {
      batchSize: 1,
      seqLen: 4,
      inputIds: ids,
      labels: new Int32Array(4).fill(-100),
    };
    await expect(
      estimateGradient(model, [batch], { targets: ["model.layers.0.self_attn.q_proj"] }),
    ).rejects.toThrow("estimateGradient: batch 1 has no learned token");
  });

  test("an all-zero gradient passed to the init names the module", () => {
    const zero = "model.layers.1.self_attn.v_proj";
    expect(() => getPeftModel(model, config(), { namedGrad: gradients(zero) })).toThrow(
      `gradient of module ${zero} is all zeros`,
    );
  });

  test("an all-zero gradient in a cache names the file and the module", async () => {
    const zero = "model.layers.0.self_attn.q_proj";
    const path = join(tempDir(), "grads.safetensors");
    await saveGradients(path, gradients(zero));
    await expect(
      loadGradients(path, selectTargets(config(), model.linears()), model.linears()),
    ).rejects.toThrow(`${path}: gradient of module ${zero} is all zeros`);
  });
});
