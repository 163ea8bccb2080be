// The compute engine of a run, in the worker, as the form's --kernels says:
// - "wasm": WebAssembly SIMD kernels on worker threads when the page is cross-origin isolated
//   (shared memory), one thread otherwise;
// - "webgpu": the WebGPU kernels on the browser's adapter (navigator.gpu); no adapter, or a model
//   the webgpu engine refuses at load, is the run's error;
// - "auto": webgpu when navigator.gpu.requestAdapter() gives an adapter and the model loads on
//   that engine, else wasm, with the reason (no adapter, or any error of the webgpu engine at
//   load) kept for the page's notice.
// The engine is kept between runs with the same engine, threads and heap limit, and replaced
// otherwise (one engine, and so one heap, at a time).

import type { Kernels } from "../../src/kernels/kernels.js";
import { createWasmKernels } from "../../src/kernels/wasm/index.js";
import type { CausalLM } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { EngineReport } from "./protocol.js";
import type { RunSettings } from "./settings.js";

type EngineName = EngineReport["engine"];

interface EngineRequest {
  choice: RunSettings["kernels"];
  /** Wasm worker threads (undefined: all cores); one when the page is not cross-origin isolated. */
  threads: number | undefined;
  /** The heap's limit in bytes (undefined: the library's default, 4 GiB). */
  heapLimitBytes: number | undefined;
}

interface Held {
  name: EngineName;
  key: string;
  kernels: Kernels;
  /** The adapter's name (webgpu), else null. */
  adapter: string | null;
  relaxedSimd: boolean;
}

/** Whether the browser gives a WebGPU adapter (navigator.gpu exists in secure contexts only). */
async function hasWebgpuAdapter(): Promise<boolean> {
  const gpu = (self.navigator as { gpu?: GPU }).gpu;
  return gpu !== undefined && (await gpu.requestAdapter()) !== null;
}

export class Engines {
  private held: Held | null = null;

  /**
   * Loads the run's model with `load` on the engine the request picks (see the file header).
   * Returns the model and what the page shows: the engine, and for auto the reason it is not
   * webgpu.
   */
  async load(
    request: EngineRequest,
    load: (kernels: Kernels) => Promise<CausalLM>,
  ): Promise<{ model: CausalLM; report: EngineReport }> {
    let fallback: string | null = null;
    if (request.choice !== "wasm") {
      if (!(await hasWebgpuAdapter())) {
        const why = "this browser gives no WebGPU adapter";
        if (request.choice === "webgpu")
          throw new Error(`--kernels webgpu: ${why}; choose auto or wasm`);
        fallback = why;
      } else {
        const kernels = await this.open("webgpu", request);
        try {
          return { model: await load(kernels), report: this.report(null) };
        } catch (error) {
          const why = error instanceof Error ? error.message : String(error);
          if (request.choice === "webgpu")
            throw new Error(`--kernels webgpu: ${why}`, { cause: error });
          fallback = why;
        }
      }
    }
    const kernels = await this.open("wasm", request);
    return { model: await load(kernels), report: this.report(fallback) };
  }

  private report(fallback: string | null): EngineReport {
    const held = this.held as Held;
    return {
      engine: held.name,
      threads: held.kernels.threads,
      isolated: self.crossOriginIsolated === true,
      relaxedSimd: held.relaxedSimd,
      adapter: held.adapter,
      fallback,
    };
  }

  private async open(name: EngineName, request: EngineRequest): Promise<Kernels> {
    // without cross-origin isolation there is no shared memory for worker threads: one thread
    const threads = self.crossOriginIsolated === true ? request.threads : 1;
    const key = `${name} ${threads} ${request.heapLimitBytes}`;
    if (this.held?.key === key) return this.held.kernels;
    await this.dispose();
    const heap = new Heap(
      request.heapLimitBytes === undefined ? {} : { maxBytes: request.heapLimitBytes },
    );
    if (name === "webgpu") {
      const { createWebGpuKernels } = await import("../../src/kernels/webgpu/index.js");
      const kernels = await createWebGpuKernels(heap);
      this.held = { name, key, kernels, adapter: kernels.gpu.adapterName, relaxedSimd: false };
    } else {
      const kernels = await createWasmKernels(heap, threads === undefined ? {} : { threads });
      this.held = { name, key, kernels, adapter: null, relaxedSimd: kernels.relaxedSimd };
    }
    return this.held.kernels;
  }

  async dispose(): Promise<void> {
    const held = this.held;
    this.held = null;
    await held?.kernels.dispose();
  }
}
