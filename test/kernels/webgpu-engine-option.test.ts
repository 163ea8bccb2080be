// `--kernels webgpu` (src/cli/options/engine.ts): with an adapter the engine opens as the webgpu
// kernels (the commands run on it: test/cli/webgpu-train.test.ts); without one, opening fails
// with the reason from kernels/webgpu/device.ts. Never a silent fallback to another engine.

import { expect, test } from "vitest";
import { openEngine } from "../../src/cli/options/engine.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

test.runIf(GPU_CONTEXT !== null)(
  "openEngine with kernels webgpu opens the webgpu kernels",
  async () => {
    const engine = await openEngine({ kernels: "webgpu", threads: undefined });
    try {
      expect(engine.kernels.name).toBe("webgpu");
      expect(engine.kernels.deferred).toBe(true);
    } finally {
      await engine.dispose();
    }
  },
);

test.runIf(GPU_CONTEXT === null)(
  "openEngine with kernels webgpu and no adapter says why",
  async () => {
    await expect(openEngine({ kernels: "webgpu", threads: undefined })).rejects.toThrow(/webgpu: /);
  },
);
