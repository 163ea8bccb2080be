// LoRA-GA initialisation benchmark (issue: LoRA-GA performance): gradient estimation over 8 batches
// of 4 x 256 tokens and the SVD-based init of every linear target (r = 8) of a random hidden-512,
// 8-layer Llama (vocab 32000), on the wasm engine and, when it is built, the native one, all threads;
// and PEFT 0.21's preprocess_loraga + get_peft_model on PyTorch CPU (2 threads) on the same config
// side by side (bench/lora_ga_init_torch.py), measured once and compared with each engine.
// --quick: 2 layers, 2 batches of 2 x 128. Also, on the wasm row: estimation's GEMM FLOPs at the
// machine's measured wasm FMA peak (wasm-peak.ts), the least time any wasm engine needs, as a ratio
// to PyTorch's time.

import { createKernels } from "../src/kernels/index.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import type { Batch } from "../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../src/models/random.js";
import { LoraGAConfig } from "../src/peft/config.js";
import { estimateGradient } from "../src/peft/estimate.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { selectTargets } from "../src/peft/targets.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { Rng } from "../src/util/random.js";
import { cpuEngines } from "./cpu-training.js";
import { meterMatmul } from "./matmul-meter.js";
import type { Reporter } from "./report.js";
import { runTorchSide } from "./torch-side.js";
import { measureWasmPeak } from "./wasm-peak.js";

interface InitShape {
  layers: number;
  nBatches: number;
  B: number;
  T: number;
  r: number;
}

interface InitTimes {
  estimateS: number;
  initS: number;
  peakMemory: number;
  gemmMs: number;
  gemmFlops: number;
}

/** Estimation over the batches, then getPeftModel's LoRA-GA init, on one engine. */
async function measureInit(
  reporter: Reporter,
  engine: "wasm" | "native",
  { layers, nBatches, B, T, r }: InitShape,
  threads: number,
): Promise<InitTimes> {
  const config = syntheticLlamaConfig({
    layers,
    hidden: 512,
    intermediate: 1376,
    heads: 8,
    vocab: 32000,
  });
  const heap = new Heap();
  const kernels = await createKernels(engine, { heap, threads });
  try {
    const model = await createLlama(
      config,
      randomCheckpoint(llamaParamSpecs(config), 1),
      kernels,
      "(random)",
    );
    const rng = new Rng(7);
    const batches: Batch[] = Array.from({ length: nBatches }, () => {
      const inputIds = Int32Array.from({ length: B * T }, () => rng.below(config.vocab_size));
      return { batchSize: B, seqLen: T, inputIds, labels: inputIds.slice() };
    });
    const lora = new LoraGAConfig({
      r,
      lora_alpha: 16,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    });
    const targets = selectTargets(lora, model.linears()).map((l) => l.path);
    reporter.note(
      `Llama hidden 512, ${layers} layers, vocab 32000; ${nBatches} batches of ${B} x ${T}; r = ${r}, ${targets.length} targets; ${engine}, ${threads} threads`,
    );
    const meter = meterMatmul(kernels);
    const t0 = performance.now();
    const { grads } = await estimateGradient(model, batches, { targets });
    const estimateS = (performance.now() - t0) / 1000;
    meter.restore();
    const t1 = performance.now();
    getPeftModel(model, lora, { namedGrad: grads, seed: 0 });
    const initS = (performance.now() - t1) / 1000;
    model.dispose();
    return {
      estimateS,
      initS,
      peakMemory: heap.peakBytes,
      gemmMs: meter.ms(),
      gemmFlops: meter.flops(),
    };
  } finally {
    await kernels.dispose();
  }
}

export async function loraGaInitSuite(
  reporter: Reporter,
  { quick }: { quick: boolean },
): Promise<void> {
  const layers = quick ? 2 : 8;
  const [nBatches, B, T] = quick ? [2, 2, 128] : [8, 4, 256];
  const r = 8;
  const shape = { layers, nBatches, B, T, r };
  const threads = await cpuCount();
  const measured = [];
  for (const engine of cpuEngines(reporter)) {
    measured.push({ engine, times: await measureInit(reporter, engine, shape, threads) });
  }
  const torch = runTorchSide("lora_ga_init_torch.py", [layers, nBatches, B, T, r]);
  if (torch.result === null) reporter.note(`  PyTorch/PEFT side skipped: ${torch.why}`);
  const torchTotal = torch.result === null ? null : torch.result.estimate_s + torch.result.init_s;
  for (const { engine, times } of measured) {
    const total = times.estimateS + times.initS;
    // estimation's GEMM FLOPs at the measured wasm FMA peak: no wasm engine estimates faster
    const bound =
      engine === "wasm"
        ? await (async () => {
            const peak = await measureWasmPeak(threads);
            const boundEstimateS = times.gemmFlops / (peak.gflopsAll * 1e9);
            return {
              wasm_peak_gflops: peak.gflopsAll,
              bound_estimate_s: boundEstimateS,
              bound_estimate_vs_torch:
                torch.result === null ? null : torch.result.estimate_s / boundEstimateS,
            };
          })()
        : {};
    reporter.record({
      kernel: "lora_ga_init",
      layers,
      batches: nBatches,
      batch: B,
      seq: T,
      r,
      impl: engine,
      threads,
      estimate_s: times.estimateS,
      svd_init_s: times.initS,
      total_s: total,
      peak_memory: times.peakMemory,
      torch_estimate_s: torch.result?.estimate_s ?? null,
      torch_init_s: torch.result?.init_s ?? null,
      vs_torch: torchTotal === null ? null : torchTotal / total,
      estimate_gemm_share: times.gemmMs / 1000 / times.estimateS,
      estimate_gemm_gflop: times.gemmFlops / 1e9,
      ...bound,
    });
  }
}
