// T5 adapters trained and written by loraga's CLI (a plain LoRA, and LoRA-GA converted to rank 2r
// for the original base), loaded by PEFT 0.21 with PeftModel.from_pretrained: PEFT's logits (and
// its merge_and_unload logits) on the fixture batch equal loraga's with the same adapter files
// (scripts/fixtures/make_loraga_written_t5_adapters.sh, check_loraga_t5_adapter_in_peft.py).

import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { loadModel } from "../../src/models/model.js";
import { loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { expectAllclose } from "../helpers/allclose.js";
import { MODEL_FIXTURES, readModelFixture } from "../helpers/model-fixtures.js";

const GLUE = "test/fixtures/e2e/t5-glue";
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

let kernels: Kernels;
beforeAll(async () => {
  kernels = await createKernels("ref", { heap: new Heap() });
});
afterAll(async () => {
  await kernels.dispose();
});

describe.each(["t5", "t5-v1_1"])("%s: loraga's adapters loaded by PEFT", (name) => {
  test.each([
    ["lora", 4],
    ["lora-ga", 4], // trained at r 2, converted to rank 2r
  ])("%s: PEFT's logits equal loraga's", async (method, rank) => {
    const adapter = `${GLUE}/${name}/${method}`;
    const config = JSON.parse(readFileSync(`${adapter}/adapter_config.json`, "utf8")) as {
      r: number;
    };
    expect(config.r).toBe(rank);
    const peft = await SafetensorsFile.open(`${adapter}-logits.safetensors`);
    const expected = await peft.readF32("logits");
    const merged = await peft.readF32("merged_logits");
    await peft.close();
    const { batch } = await readModelFixture(name);
    const model = await loadModel(`${MODEL_FIXTURES}/${name}`, { kernels });
    const base = model.forward(batch).toArray();
    await loadPeftModel(model, adapter);
    const ours = model.forward(batch).toArray();
    model.dispose();
    const tol = { rtol: 1e-5, atol: 1e-5 * maxAbs(expected) };
    expectAllclose(ours, expected, { ...tol, label: "adapter" });
    expectAllclose(merged, expected, { ...tol, label: "PEFT merged" });
    expect(maxAbs(ours.map((v, i) => v - base[i]))).toBeGreaterThan(1e-2); // the adapter does something
  });
});
