// `--kernels webgpu` (src/cli/options/engine.ts): the option is accepted, and opening the engine
// fails with a message that says why: no adapter (the reason from kernels/webgpu/device.ts), or,
// with one, that the commands do not run on the WebGPU engine yet. Never a silent fallback.

import { expect, test } from "vitest";
import { openEngine } from "../../src/cli/options/engine.js";
import { GPU_CONTEXT } from "../helpers/webgpu.js";

test("openEngine with kernels webgpu refuses clearly", async () => {
  const opening = openEngine({ kernels: "webgpu", threads: undefined });
  await expect(opening).rejects.toThrow(
    GPU_CONTEXT === null ? /webgpu: / : /do not run on the WebGPU engine yet/,
  );
});
