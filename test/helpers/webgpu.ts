// Whether the WebGPU tests can run here: opens a device once per test file. In Node on Linux the
// adapter is Mesa's lavapipe (a Vulkan driver on the CPU; Mesa >= 25, .ci/run installs it), found
// through VK_ICD_FILENAMES, which is set here to lavapipe's ICD json when unset, and Dawn wants a
// writable XDG_RUNTIME_DIR, made here when unset. WEBGPU_ENGINES is ["webgpu"] when a device
// opens, else [] and WEBGPU_UNAVAILABLE says why (test/kernels/webgpu-adapter.test.ts fails a CI
// run then, so CI never silently skips the WebGPU tests).

import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GpuContext, openGpu } from "../../src/kernels/webgpu/device.js";

const LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.json";

if (process.env.VK_ICD_FILENAMES === undefined && existsSync(LAVAPIPE_ICD)) {
  process.env.VK_ICD_FILENAMES = LAVAPIPE_ICD;
}
if (process.env.XDG_RUNTIME_DIR === undefined) {
  process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), "loraga-xdg-"));
}

async function probe(): Promise<GpuContext | string> {
  try {
    return await openGpu();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

const probed = await probe();

/** The device the probe opened, or null (then WEBGPU_UNAVAILABLE is the reason). */
export const GPU_CONTEXT: GpuContext | null = typeof probed === "string" ? null : probed;
export const WEBGPU_UNAVAILABLE: string | null = typeof probed === "string" ? probed : null;
