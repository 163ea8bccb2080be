// Training-step benchmark: forward + backward of a random Llama (no weight gradients, activation
// gradients on down to inputs_embeds, as the PyTorch side computes them) with the wasm kernels, and
// the native ones when built, on all threads; tokens/s and the share of the step spent in GEMM
// (kernels.matmul wrapped with a timer).
// Also the step's GEMM FLOPs divided by the machine's measured wasm SIMD128 FMA peak
// (wasm-peak.ts): the fastest any wasm engine could do this step, as a ratio to PyTorch too.
// PyTorch CPU on the same config runs side by side via bench/train_step_torch.py when python3 and
// torch are installed (skipped with a note otherwise), and the ratio is printed.
//
// Config: hidden 512, 8 layers, 8 heads (MHA), intermediate 1376, vocab 32000, untied lm_head,
// batch 4 x seq 256 (--quick: 2 layers, batch 2 x seq 128). Weights ~ N(0, 0.02), norms 1.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type LlamaFamilyConfig, parseModelConfig } from "../src/io/hf-config.js";
import { createKernels } from "../src/kernels/index.js";
import { nativeAvailability } from "../src/kernels/native/index.js";
import type { CheckpointSource } from "../src/models/common.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import type { Batch } from "../src/models/model.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/util/random.js";
import { meterMatmul } from "./matmul-meter.js";
import type { Reporter } from "./report.js";
import { measureWasmPeak } from "./wasm-peak.js";

interface Shape {
  layers: number;
  batch: number;
  seq: number;
}

function llamaConfig(layers: number): LlamaFamilyConfig {
  const config = parseModelConfig({
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 512,
    intermediate_size: 1376,
    num_hidden_layers: layers,
    num_attention_heads: 8,
    num_key_value_heads: 8,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: false,
  });
  if (config.model_type !== "llama" || !config.recognized)
    throw new Error("bench: llama config not recognized");
  return config as LlamaFamilyConfig;
}

/** A checkpoint stand-in that fills every tensor with seeded random values. */
function randomCheckpoint(config: LlamaFamilyConfig, seed: number): CheckpointSource {
  const rng = new Rng(seed);
  const entries = new Map(
    llamaParamSpecs(config).map((s) => [s.name, { shape: [...s.shape], file: "(random)" }]),
  );
  return {
    entries,
    readInto(name: string, target: Tensor) {
      const data = target.f32();
      if (name.endsWith("norm.weight")) data.fill(1);
      else for (let i = 0; i < data.length; i++) data[i] = 0.02 * rng.normal();
    },
  };
}

function randomBatch(vocab: number, B: number, T: number, seed: number): Batch {
  const rng = new Rng(seed);
  const inputIds = Int32Array.from({ length: B * T }, () => rng.below(vocab));
  return { batchSize: B, seqLen: T, inputIds, labels: inputIds.slice() };
}

interface TorchResult {
  step_ms: number;
  tokens_per_s: number;
  threads: number;
}

function runTorch(shape: Shape, reps: number): TorchResult | string {
  const here = dirname(fileURLToPath(import.meta.url));
  // works from bench/ (sources) and build/bench/ (compiled)
  const script = [
    join(here, "train_step_torch.py"),
    join(here, "..", "..", "bench", "train_step_torch.py"),
  ].find((p) => existsSync(p));
  if (script === undefined) return "bench/train_step_torch.py not found";
  const args = [script, String(shape.layers), String(shape.batch), String(shape.seq), String(reps)];
  const out = spawnSync("python3", args, { encoding: "utf8", timeout: 900_000 });
  if (out.error !== undefined) return `python3 not runnable (${out.error.message})`;
  if (out.status !== 0) {
    const last = out.stderr.trim().split("\n").pop() ?? "";
    return `python3 ${script} failed (${last})`;
  }
  const line = out.stdout.split("\n").find((l) => l.startsWith("{"));
  if (line === undefined) return "no result line from train_step_torch.py";
  return JSON.parse(line) as TorchResult;
}

interface StepResult {
  /** tokens per second at the median step */
  tokensPerS: number;
  /** GEMM FLOPs of one step */
  flops: number;
}

/** Times lossAndGrads of the bench Llama on one engine and records the median step. */
async function measureStep(
  reporter: Reporter,
  engine: "wasm" | "native",
  shape: Shape,
  reps: number,
  threads: number,
): Promise<StepResult> {
  const config = llamaConfig(shape.layers);
  const heap = new Heap({ initialBytes: 1024 * 2 ** 20 });
  const kernels = await createKernels(engine, { heap, threads });
  const model = await createLlama(config, randomCheckpoint(config, 1), kernels, "(random)");
  const batch = randomBatch(config.vocab_size, shape.batch, shape.seq, 2);
  const tokens = shape.batch * shape.seq;
  // train_step_torch.py backpropagates to inputs_embeds (requires_grad): ask for the same gradient
  const inputsEmbedsGrad = heap.tensor([shape.batch, shape.seq, config.hidden_size]); // (B, T, C)
  const stepOptions = { inputsEmbedsGrad };
  const timer = meterMatmul(kernels);
  try {
    model.lossAndGrads(batch, stepOptions); // warm-up (plans the activations)
    const steps: { ms: number; gemm: number; flops: number }[] = [];
    for (let r = 0; r < reps; r++) {
      timer.reset();
      const t0 = performance.now();
      model.lossAndGrads(batch, stepOptions);
      steps.push({ ms: performance.now() - t0, gemm: timer.ms(), flops: timer.flops() });
    }
    steps.sort((a, b) => a.ms - b.ms);
    const median = steps[Math.floor(steps.length / 2)];
    const tokensPerS = tokens / (median.ms / 1000);
    reporter.record({
      impl: `loraga-${engine}`,
      threads,
      step_ms: median.ms,
      tokens_per_s: tokensPerS,
      gemm_share: median.gemm / median.ms,
      gemm_gflops: median.flops / median.gemm / 1e6,
      heap_mib: heap.peakBytes / 2 ** 20,
    });
    return { tokensPerS, flops: median.flops };
  } finally {
    timer.restore();
    inputsEmbedsGrad.dispose();
    model.dispose();
    await kernels.dispose();
  }
}

export async function trainStepSuite(
  reporter: Reporter,
  options: { quick: boolean },
): Promise<void> {
  const shape: Shape = options.quick
    ? { layers: 2, batch: 2, seq: 128 }
    : { layers: 8, batch: 4, seq: 256 };
  const reps = options.quick ? 1 : 3;
  const threads = await cpuCount();
  reporter.note(
    `llama hidden 512, ${shape.layers} layers, 8 heads, intermediate 1376, vocab 32000; batch ${shape.batch} x seq ${shape.seq}; ` +
      "no weight gradients, activation gradients on",
  );
  const tokens = shape.batch * shape.seq;
  const wasm = await measureStep(reporter, "wasm", shape, reps, threads);
  const native = nativeAvailability();
  let nativeResult: StepResult | undefined;
  if (native.ok) nativeResult = await measureStep(reporter, "native", shape, reps, threads);
  else reporter.note(`native engine skipped: ${native.reason}`);
  // the GEMM FLOPs alone, at the measured wasm FMA peak: no wasm engine can do the step faster
  const peak = await measureWasmPeak(threads);
  const boundMs = wasm.flops / (peak.gflopsAll * 1e6);
  const boundTokensPerS = tokens / (boundMs / 1000);
  reporter.record({
    bound: "gemm_flops_at_wasm_peak",
    gemm_gflop: wasm.flops / 1e9,
    wasm_peak_gflops: peak.gflopsAll,
    wasm_peak_gflops_1thread: peak.gflops1,
    relaxed: peak.relaxed,
    bound_step_ms: boundMs,
    bound_tokens_per_s: boundTokensPerS,
  });
  const torch = runTorch(shape, reps);
  if (typeof torch === "string") {
    reporter.note(`PyTorch skipped: ${torch}`);
    return;
  }
  reporter.record({
    impl: "pytorch-cpu",
    threads: torch.threads,
    step_ms: torch.step_ms,
    tokens_per_s: torch.tokens_per_s,
  });
  reporter.record({
    ratio_loraga_over_torch: wasm.tokensPerS / torch.tokens_per_s,
    ...(nativeResult === undefined
      ? {}
      : { ratio_native_over_torch: nativeResult.tokensPerS / torch.tokens_per_s }),
    bound_ratio_over_torch: boundTokensPerS / torch.tokens_per_s,
  });
}
