// Engine flags, shared by every model-facing subcommand: the compute kernels and their threads,
// --config and --quiet; and the engine (heap + kernels) they describe.

import { createKernels } from "../../kernels/index.js";
import type { Kernels } from "../../kernels/kernels.js";
import { Heap } from "../../tensor/heap.js";
import { choiceFlag, intFlag, stringFlag, switchFlag, withDefault } from "./schema.js";

/** --config and --quiet, which every subcommand takes (compare and convert without an engine). */
export const configFlag = stringFlag(
  "--config <file>",
  "YAML or JSON file with option values (flags win)",
);

export const ENGINE_FLAGS = {
  kernels: withDefault(
    choiceFlag("--kernels <name>", "compute kernels", ["auto", "native", "wasm", "ref", "webgpu"]),
    "auto",
  ),
  threads: intFlag("--threads <n>", "worker threads (default: all cores)"),
  config: configFlag,
  quiet: switchFlag("-q, --quiet", "no progress output"),
};

export interface EngineOptions {
  readonly kernels: "auto" | "native" | "wasm" | "ref" | "webgpu";
  readonly threads: number | undefined;
}

export interface Engine {
  heap: Heap;
  kernels: Kernels;
  dispose(): Promise<void>;
}

export async function openEngine(options: EngineOptions): Promise<Engine> {
  const heap = new Heap();
  const kernels = await createKernels(options.kernels, {
    heap,
    ...(options.threads !== undefined && { threads: options.threads }),
    onFallback: (reason) => process.stderr.write(`loraga: using the wasm engine (${reason})\n`),
  });
  return { heap, kernels, dispose: () => kernels.dispose() };
}
