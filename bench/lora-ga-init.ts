// LoRA-GA initialisation benchmark (issue: LoRA-GA performance): gradient estimation over 8 batches
// of 4 x 256 tokens and the SVD-based init of every linear target (r = 8) of a random hidden-512,
// 8-layer Llama (vocab 32000), wasm kernels on all threads; and PEFT 0.21's preprocess_loraga +
// get_peft_model on PyTorch CPU (2 threads) on the same config side by side (bench/lora_ga_init_torch.py).
// --quick: 2 layers, 2 batches of 2 x 128. Also: estimation's GEMM FLOPs at the machine's measured
// wasm FMA peak (wasm-peak.ts), the least time any wasm engine needs, as a ratio to PyTorch's time.

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
import { meterMatmul } from "./matmul-meter.js";
import type { Reporter } from "./report.js";
import { runTorchSide } from "./torch-side.js";
import { measureWasmPeak } from "./wasm-peak.js";

export async function loraGaInitSuite(
  reporter: Reporter,
  { quick }: { quick: boolean },
): Promise<void> {
  const layers = quick ? 2 : 8;
  const [nBatches, B, T] = quick ? [2, 2, 128] : [8, 4, 256];
  const r = 8;
  const config = syntheticLlamaConfig({
    layers,
    hidden: 512,
    intermediate: 1376,
    heads: 8,
    vocab: 32000,
  });
  const heap = new Heap();
  const threads = await cpuCount();
  const kernels = await createKernels("wasm", { heap, threads });
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
      `Llama hidden 512, ${layers} layers, vocab 32000; ${nBatches} batches of ${B} x ${T}; r = ${r}, ${targets.length} targets; wasm, ${threads} threads`,
    );
    const meter = meterMatmul(kernels);
    const t0 = performance.now();
    const { grads } = await estimateGradient(model, batches, { targets });
    const estimateS = (performance.now() - t0) / 1000;
    meter.restore();
    const t1 = performance.now();
    getPeftModel(model, lora, { namedGrad: grads, seed: 0 });
    const initS = (performance.now() - t1) / 1000;
    const torch = runTorchSide("lora_ga_init_torch.py", [layers, nBatches, B, T, r]);
    const total = estimateS + initS;
    const torchTotal = torch.result === null ? null : torch.result.estimate_s + torch.result.init_s;
    // estimation's GEMM FLOPs at the measured wasm FMA peak: no wasm engine estimates faster
    const peak = await measureWasmPeak(threads);
    const boundEstimateS = meter.flops() / (peak.gflopsAll * 1e9);
    reporter.record({
      kernel: "lora_ga_init",
      layers,
      batches: nBatches,
      batch: B,
      seq: T,
      r,
      impl: "wasm",
      threads,
      estimate_s: estimateS,
      svd_init_s: initS,
      total_s: total,
      peak_memory: heap.peakBytes,
      torch_estimate_s: torch.result?.estimate_s ?? null,
      torch_init_s: torch.result?.init_s ?? null,
      vs_torch: torchTotal === null ? null : torchTotal / total,
      estimate_gemm_share: meter.ms() / 1000 / estimateS,
      estimate_gemm_gflop: meter.flops() / 1e9,
      wasm_peak_gflops: peak.gflopsAll,
      bound_estimate_s: boundEstimateS,
      bound_estimate_vs_torch:
        torch.result === null ? null : torch.result.estimate_s / boundEstimateS,
    });
    if (torch.result === null) reporter.note(`  PyTorch/PEFT side skipped: ${torch.why}`);
    model.dispose();
  } finally {
    await kernels.dispose();
  }
}
