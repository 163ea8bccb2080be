// createKernels: the registry of Kernels implementations, chosen by name (no global default).
// "ref" is the plain-TypeScript oracle; "wasm" (kernels/wasm/) is loaded lazily so that users of
// the reference kernels never load WebAssembly or worker code.

import type { Heap } from "../tensor/heap.js";
import type { Kernels, KernelsName } from "./kernels.js";
import { createRefKernels } from "./ref/index.js";

export interface CreateKernelsOptions {
  heap: Heap;
  /** Worker threads for implementations that use them (wasm); ignored by ref. */
  threads?: number;
}

const KERNELS_NAMES: readonly KernelsName[] = ["ref", "wasm"];

interface WasmKernelsModule {
  createWasmKernels(heap: Heap, options: { threads?: number }): Promise<Kernels>;
}

export async function createKernels(
  name: KernelsName,
  options: CreateKernelsOptions,
): Promise<Kernels> {
  switch (name) {
    case "ref":
      return createRefKernels(options.heap);
    case "wasm": {
      // A variable specifier keeps the import lazy and out of the static module graph.
      const specifier = "./wasm/index.js";
      let module: WasmKernelsModule;
      try {
        module = (await import(specifier)) as WasmKernelsModule;
      } catch (error) {
        throw new Error(
          `createKernels("wasm"): cannot load kernels/wasm/index.js: ${String(error)}`,
          {
            cause: error,
          },
        );
      }
      const wasmOptions = options.threads === undefined ? {} : { threads: options.threads };
      return module.createWasmKernels(options.heap, wasmOptions);
    }
    default:
      name satisfies never;
      throw new Error(
        `unknown kernels "${String(name)}"; supported: ${KERNELS_NAMES.map((n) => `"${n}"`).join(", ")}`,
      );
  }
}
