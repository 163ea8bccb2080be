// The host-memory check before LoRA-GA estimation (checkGradientHostMemory, cli/workflow/
// estimate-init.ts): the targets' f32 gradients (4 bytes per weight of every target) against the
// memory the process can still take (platform/host-memory.ts). Exactly enough passes, one byte
// less is refused with one line naming the flag, the targets and both sizes; the measure of
// available memory is a positive amount no larger than the machine's memory plus its swap.

import { readFileSync } from "node:fs";
import { totalmem } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { UsageError } from "../../src/cli/errors.js";
import { checkGradientHostMemory } from "../../src/cli/workflow/estimate-init.js";
import { createKernels } from "../../src/kernels/index.js";
import { loadModel } from "../../src/models/model.js";
import { availableHostMemory } from "../../src/platform/host-memory.js";
import { Heap } from "../../src/tensor/heap.js";
import { MODEL_FIXTURES } from "../helpers/model-fixtures.js";

test("the targets' f32 gradients against the host memory available", async () => {
  const kernels = await createKernels("ref", { heap: new Heap() });
  const model = await loadModel(join(MODEL_FIXTURES, "llama-gqa"), { kernels });
  try {
    const targets = model.linears().filter((l) => l.path !== "lm_head");
    const need = targets.reduce((n, l) => n + 4 * l.inFeatures * l.outFeatures, 0);
    expect(need).toBeGreaterThan(0);
    expect(() => checkGradientHostMemory("--target", targets, need)).not.toThrow();
    let error: unknown;
    try {
      checkGradientHostMemory("--target", targets, need - 1);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as Error).message;
    expect(message).not.toContain("\n");
    expect(message).toMatch(
      new RegExp(`^--target: the f32 gradients of its ${targets.length} target modules need `),
    );
    expect(message).toContain("target fewer modules");
  } finally {
    model.dispose();
    await kernels.dispose();
  }
});

test("available host memory: positive, at most the machine's memory plus its swap", () => {
  const available = availableHostMemory();
  const swap = /^SwapTotal:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
  expect(available).toBeGreaterThan(0);
  expect(available).toBeLessThanOrEqual(totalmem() + Number(swap?.[1] ?? 0) * 1024);
});
