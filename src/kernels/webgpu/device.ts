// Opening a WebGPU device for the engine: in a browser from navigator.gpu, in Node from the
// `webgpu` npm package (Dawn's prebuilt Node binding, an optional dependency). The adapter's
// optional features the kernels use (shader-f16, subgroups) are requested when present, and the
// buffer-size limits are raised to the adapter's own maxima (the spec's defaults cap a storage
// binding at 128 MiB, smaller than one embedding table of a 0.5B model).
//
// Failure is an Error whose message says why (no `webgpu` package, no adapter, device lost), so
// that `--kernels webgpu` can report it; nothing falls back to another engine.

/// <reference types="@webgpu/types" />

/** What the kernels need to know about the device they run on. */
export interface GpuContext {
  /**
   * The GPU object the device came from. Held for the device's lifetime: in Node it is Dawn's
   * instance, and if the garbage collector frees it, Dawn's event processing crashes the process.
   */
  readonly entry: GPU;
  readonly device: GPUDevice;
  /** "vendor architecture device description" of the adapter, for logs and benches. */
  readonly adapterName: string;
  /** The adapter has shader-f16 and the device was created with it. */
  readonly f16: boolean;
  /**
   * The device has the subgroups feature and WGSL the subgroup_id and num_subgroups built-ins
   * (the subgroup kernels read them: gemm.ts, rows.ts).
   */
  readonly subgroups: boolean;
  /** The adapter's subgroup sizes (0 when it does not report them); a kernel sees one of them. */
  readonly subgroupSizes: { readonly min: number; readonly max: number };
  /** The device's limits (the adapter's maxima for the limits raised here). */
  readonly limits: GPUSupportedLimits;
}

/**
 * GPUBufferUsage and GPUMapMode flag values (WebGPU spec, "Buffer Usages" and "GPUMapMode"),
 * spelled out because Dawn for Node does not define the GPUBufferUsage globals.
 */
export const BUFFER_USAGE = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;
export const MAP_READ = 0x1;

interface NodeWebGpuModule {
  create(flags: string[]): GPU;
}

/** The GPU object: navigator.gpu where it exists, else Dawn's through the `webgpu` package. */
async function gpuEntry(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu !== undefined) return nav.gpu;
  // a variable specifier keeps the native package out of browser bundles
  const specifier = "webgpu";
  let module: NodeWebGpuModule;
  try {
    module = (await import(specifier)) as NodeWebGpuModule;
  } catch (error) {
    throw new Error(
      `webgpu: no navigator.gpu and the optional "webgpu" package (Dawn for Node) did not load: ${String(error)}`,
      { cause: error },
    );
  }
  return module.create([]);
}

/** Limits raised from the spec's defaults to what the adapter supports. */
const RAISED_LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
] as const;

export async function openGpu(): Promise<GpuContext> {
  const gpu = await gpuEntry();
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (adapter === null) {
    throw new Error(
      "webgpu: no adapter (no GPU driver that WebGPU can use; in Node on Linux install a Vulkan " +
        "driver, e.g. Mesa >= 25 lavapipe, and set VK_ICD_FILENAMES to its ICD json)",
    );
  }
  const requiredFeatures: GPUFeatureName[] = [];
  const f16 = adapter.features.has("shader-f16");
  const subgroupFeature = adapter.features.has("subgroups");
  if (f16) requiredFeatures.push("shader-f16");
  if (subgroupFeature) requiredFeatures.push("subgroups");
  const subgroups = subgroupFeature && gpu.wgslLanguageFeatures?.has("subgroup_id") === true;
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture, info.device, info.description]
    .filter((s) => s !== "")
    .join(" ");
  const subgroupSizes = { min: info.subgroupMinSize ?? 0, max: info.subgroupMaxSize ?? 0 };
  return {
    entry: gpu,
    device,
    adapterName,
    f16,
    subgroups,
    subgroupSizes,
    limits: device.limits,
  };
}
