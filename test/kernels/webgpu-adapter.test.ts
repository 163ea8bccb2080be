// A WebGPU adapter and device open here (lavapipe in CI): prints the adapter, its optional
// features and workgroup limits, and runs one compute dispatch end to end (upload, shader,
// read-back). With CI set, a missing adapter fails the run instead of skipping the WebGPU tests.

import { expect, test } from "vitest";
import { BUFFER_USAGE, MAP_READ } from "../../src/kernels/webgpu/device.js";
import { GPU_CONTEXT, WEBGPU_UNAVAILABLE } from "../helpers/webgpu.js";

test.runIf(process.env.CI !== undefined)("CI: a WebGPU adapter and device open", () => {
  expect(WEBGPU_UNAVAILABLE ?? "opened").toBe("opened");
});

test.runIf(GPU_CONTEXT !== null)("the adapter runs a compute shader", async () => {
  const gpu = GPU_CONTEXT;
  if (gpu === null) return;
  const { device, limits } = gpu;
  console.log(
    `webgpu adapter: ${gpu.adapterName}; shader-f16 ${gpu.f16}, subgroups ${gpu.subgroups}; ` +
      `workgroup <= ${limits.maxComputeInvocationsPerWorkgroup} invocations, ` +
      `${limits.maxComputeWorkgroupStorageSize} B shared; storage binding <= ${limits.maxStorageBufferBindingSize} B`,
  );
  const module = device.createShaderModule({
    code: `@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&x)) { x[id.x] = x[id.x] * 2.0 + f32(id.x); }
}`,
  });
  const pipeline = device.createComputePipeline({
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  const n = 100;
  const data = new Float32Array(n).map((_, i) => i * 0.5);
  const buffer = device.createBuffer({
    size: n * 4,
    usage: BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, data);
  const staging = device.createBuffer({
    size: n * 4,
    usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(
    0,
    device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer } }],
    }),
  );
  pass.dispatchWorkgroups(Math.ceil(n / 64));
  pass.end();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, n * 4);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MAP_READ);
  const result = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  expect(Array.from(result)).toEqual(Array.from(data, (v, i) => v * 2 + i));
});
