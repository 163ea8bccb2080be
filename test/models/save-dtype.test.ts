// Merged / saved checkpoints describe themselves: config.json carries the dtype that was stored,
// as "dtype" and, where the source uses that name, "torch_dtype".
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { openCheckpoint } from "../../src/io/safetensors.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { loadModel } from "../../src/models/model.js";
import { saveModel } from "../../src/models/save.js";
import { Heap } from "../../src/tensor/heap.js";
import { tempDir } from "../helpers/cli.js";

let kernels: Kernels;
beforeAll(async () => {
  kernels = await createKernels("ref", { heap: new Heap() });
});
afterAll(async () => {
  await kernels.dispose();
});

/** A copy of the llama-gqa fixture whose config.json is `config` (its own keys). */
function source(edit: (config: Record<string, unknown>) => void): string {
  const dir = join(tempDir(), "src");
  mkdirSync(dir);
  copyFileSync("test/fixtures/models/llama-gqa/model.safetensors", join(dir, "model.safetensors"));
  const config = JSON.parse(readFileSync("test/fixtures/models/llama-gqa/config.json", "utf8"));
  edit(config);
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

describe("saveModel config.json dtype", () => {
  test.each([
    ["BF16", "bfloat16"],
    ["F16", "float16"],
  ] as const)("--dtype %s: dtype and torch_dtype say %s", async (dtype, name) => {
    const src = source((c) => {
      c.torch_dtype = "float32";
      delete c.dtype;
    });
    const model = await loadModel(src, { kernels });
    const out = join(tempDir(), "merged");
    await saveModel(model, out, { sourceDir: src, dtype });
    model.dispose();
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(config.dtype).toBe(name);
    expect(config.torch_dtype).toBe(name);
    const file = await openCheckpoint(out);
    expect(new Set([...file.entries.values()].map((e) => e.dtype))).toEqual(new Set([dtype]));
    await file.close();
  });

  test("a source without torch_dtype gets only dtype; other keys are kept", async () => {
    const src = source((c) => {
      delete c.torch_dtype;
      c.dtype = "float32";
    });
    const model = await loadModel(src, { kernels });
    const out = join(tempDir(), "merged");
    await saveModel(model, out, { sourceDir: src, dtype: "BF16" });
    model.dispose();
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    const original = JSON.parse(readFileSync(join(src, "config.json"), "utf8"));
    expect(config).toEqual({ ...original, dtype: "bfloat16" });
  });
});
