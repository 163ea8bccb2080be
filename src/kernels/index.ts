// createKernels: the registry of Kernels implementations, chosen by name (no global default).
// "ref" is the plain-TypeScript oracle; "wasm" (kernels/wasm/) and "native" (kernels/native/, a C
// addon built at install time, Node only) are loaded lazily so that users of the reference
// kernels never load WebAssembly, worker or addon code. "webgpu" (kernels/webgpu/) runs on a
// WebGPU device (navigator.gpu, or Dawn through the optional `webgpu` package in Node); it is
// never picked by "auto". "auto" is "native" when its addon loads and "wasm" otherwise (onFallback
// hears why).

import type { Heap } from "../tensor/heap.js";
import type { Kernels, KernelsName } from "./kernels.js";
import { createRefKernels } from "./ref/index.js";

export interface CreateKernelsOptions {
  heap: Heap;
  /** Worker threads for implementations that use them (wasm, native); ignored by ref. */
  threads?: number;
  /** "auto" only: called with the reason when the native engine is unavailable and wasm is used. */
  onFallback?: (reason: string) => void;
}

const KERNELS_NAMES: readonly KernelsName[] = ["ref", "wasm", "native", "webgpu", "auto"];

interface WasmKernelsModule {
  createWasmKernels(heap: Heap, options: { threads?: number }): Promise<Kernels>;
}
interface WebGpuKernelsModule {
  createWebGpuKernels(heap: Heap): Promise<Kernels>;
}
interface NativeKernelsModule {
  createNativeKernels(heap: Heap, options: { threads?: number }): Promise<Kernels>;
  nativeAvailability(): { ok: true } | { ok: false; reason: string };
}

/** Imports a kernels module by a variable specifier, which keeps it out of the static graph. */
async function importKernels<T>(name: string, specifier: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (error) {
    throw new Error(
      `createKernels("${name}"): cannot load kernels/${specifier}: ${String(error)}`,
      {
        cause: error,
      },
    );
  }
}

export async function createKernels(
  name: KernelsName,
  options: CreateKernelsOptions,
): Promise<Kernels> {
  const threadOptions = options.threads === undefined ? {} : { threads: options.threads };
  switch (name) {
    case "ref":
      return createRefKernels(options.heap);
    case "wasm": {
      const module = await importKernels<WasmKernelsModule>(name, "./wasm/index.js");
      return module.createWasmKernels(options.heap, threadOptions);
    }
    case "native": {
      const module = await importKernels<NativeKernelsModule>(name, "./native/index.js");
      return module.createNativeKernels(options.heap, threadOptions);
    }
    case "webgpu": {
      const module = await importKernels<WebGpuKernelsModule>(name, "./webgpu/index.js");
      return module.createWebGpuKernels(options.heap);
    }
    case "auto": {
      let reason: string;
      try {
        const module = await importKernels<NativeKernelsModule>(name, "./native/index.js");
        const availability = module.nativeAvailability();
        if (availability.ok) return module.createNativeKernels(options.heap, threadOptions);
        reason = availability.reason;
      } catch (error) {
        reason = String(error); // e.g. a browser: the addon loader needs node:module
      }
      options.onFallback?.(reason);
      return createKernels("wasm", options);
    }
    default:
      name satisfies never;
      throw new Error(
        `unknown kernels "${String(name)}"; supported: ${KERNELS_NAMES.map((n) => `"${n}"`).join(", ")}`,
      );
  }
}

/**
 * Kernels whose results the host may read as soon as a call returns: `kernels` itself, or for a
 * deferred engine (webgpu) the reference kernels on its heap. For the small host-side parts of a
 * workflow, e.g. LoRA-GA's randomized SVD and base offsets (docs/engine-notes.md), on tensors
 * allocated for them: the deferred engine does not see what these kernels write.
 */
export function hostKernels(kernels: Kernels): Kernels {
  return kernels.deferred ? createRefKernels(kernels.heap) : kernels;
}
