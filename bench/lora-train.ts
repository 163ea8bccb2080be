// LoRA training benchmark (issue: training performance): tokens/s of LoRA training steps (forward,
// backward into the adapters, AdamW) on a random hidden-512, 8-layer Llama (vocab 32000), seq 256,
// batch 4, r = 8 on every linear target, on the wasm engine and, when it is built, the native one,
// all threads, with peak engine memory; and PyTorch + PEFT on CPU (2 threads), same config, side by
// side (bench/lora_train_torch.py), measured once and compared with each engine.
// Memory flatness: a small model (2 layers, hidden 128) trains 1,000 steps and the engine's bytes
// in use and the process RSS are compared between step 10 and step 1,000.
// --quick: 2 layers, batch 2 x 128, 3 timed steps; 200 steps for the flatness check.
// Also, on the wasm row: a step's GEMM FLOPs at the machine's measured wasm FMA peak (wasm-peak.ts),
// the most tokens/s any wasm engine could reach, as a ratio to PyTorch's; and the same step with a
// completion-only loss (the first half of every row a prompt with labels -100), on both sides.

import { createKernels } from "../src/kernels/index.js";
import type { Kernels } from "../src/kernels/kernels.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import type { Batch, CausalLM } from "../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../src/models/random.js";
import { LoraConfig } from "../src/peft/config.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { FixedBatches } from "../src/train/data-order.js";
import { train } from "../src/train/trainer.js";
import { Rng } from "../src/util/random.js";
import { cpuEngines, trainStepSeconds } from "./cpu-training.js";
import { meterMatmul } from "./matmul-meter.js";
import type { Reporter } from "./report.js";
import { runTorchSide } from "./torch-side.js";
import { measureWasmPeak } from "./wasm-peak.js";

const ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
/** Share of each row that is a masked prompt in the completion-only measurement. */
const PROMPT_SHARE = 0.5;

/** Random batches; the first promptShare of each row's labels are -100 (a masked prompt). */
function randomBatches(
  vocab: number,
  count: number,
  B: number,
  T: number,
  promptShare = 0,
): Batch[] {
  const rng = new Rng(5);
  return Array.from({ length: count }, () => {
    const inputIds = Int32Array.from({ length: B * T }, () => rng.below(vocab));
    const labels = inputIds.slice();
    for (let b = 0; b < B; b++) labels.fill(-100, b * T, b * T + Math.floor(T * promptShare));
    return { batchSize: B, seqLen: T, inputIds, labels };
  });
}

async function loraModel(
  kernels: Kernels,
  size: Parameters<typeof syntheticLlamaConfig>[0],
  r: number,
) {
  const config = syntheticLlamaConfig(size);
  const model: CausalLM = await createLlama(
    config,
    randomCheckpoint(llamaParamSpecs(config), 1),
    kernels,
    "(random)",
  );
  const trainable = getPeftModel(
    model,
    new LoraConfig({ r, lora_alpha: 16, target_modules: ALL_LINEAR }),
    { seed: 0 },
  );
  return { model, trainable, vocab: config.vocab_size };
}

interface StepTimes {
  stepS: number;
  maskedStepS: number;
  peakMemory: number;
  gemmMs: number;
  gemmFlops: number;
}

/** Seconds per LoRA step on one engine, with a full loss and with a completion-only loss. */
async function measureLoraSteps(
  reporter: Reporter,
  engine: "wasm" | "native",
  { layers, B, T, r, steps }: { layers: number; B: number; T: number; r: number; steps: number },
  threads: number,
): Promise<StepTimes> {
  const heap = new Heap();
  const kernels = await createKernels(engine, { heap, threads });
  try {
    const size = { layers, hidden: 512, intermediate: 1376, heads: 8, vocab: 32000 };
    const { model, trainable, vocab } = await loraModel(kernels, size, r);
    const data = new FixedBatches(randomBatches(vocab, 2, B, T));
    reporter.note(
      `LoRA training: Llama hidden 512, ${layers} layers, vocab 32000, batch ${B} x ${T}, r = ${r} on all linear layers; ${engine}, ${threads} threads`,
    );
    const meter = meterMatmul(kernels);
    const stepS = await trainStepSeconds(trainable, data, steps, () => meter.reset());
    meter.restore();
    // Completion-only loss, as supervised fine-tuning usually trains: the first half of every
    // row is a prompt with labels -100. loraga then runs the lm_head on the counted rows only
    // (decoder-base.ts headLoss); transformers computes logits for every position. Same steps,
    // same tokens per step on both sides.
    const masked = new FixedBatches(randomBatches(vocab, 2, B, T, PROMPT_SHARE));
    const maskedStepS = await trainStepSeconds(trainable, masked, steps);
    model.dispose();
    return {
      stepS,
      maskedStepS,
      peakMemory: heap.peakBytes,
      gemmMs: meter.ms() / steps,
      gemmFlops: meter.flops() / steps,
    };
  } finally {
    await kernels.dispose();
  }
}

export async function loraTrainSuite(
  reporter: Reporter,
  { quick }: { quick: boolean },
): Promise<void> {
  const threads = await cpuCount();
  const layers = quick ? 2 : 8;
  const [B, T, steps] = quick ? [2, 128, 3] : [4, 256, 3];
  const r = 8;
  const measured = [];
  for (const engine of cpuEngines(reporter)) {
    const times = await measureLoraSteps(reporter, engine, { layers, B, T, r, steps }, threads);
    measured.push({ engine, times });
  }
  const torch = runTorchSide("lora_train_torch.py", [layers, B, T, r, steps]);
  if (torch.result === null) reporter.note(`  PyTorch/PEFT side skipped: ${torch.why}`);
  const torchMasked = runTorchSide("lora_train_torch.py", [layers, B, T, r, steps, PROMPT_SHARE]);
  for (const { engine, times } of measured) {
    const tokensPerS = (B * T) / times.stepS;
    // a step's GEMM FLOPs at the measured wasm FMA peak: no wasm engine trains faster
    const bound =
      engine === "wasm"
        ? await (async () => {
            const peak = await measureWasmPeak(threads);
            const boundTokensPerS = (B * T) / (times.gemmFlops / (peak.gflopsAll * 1e9));
            return {
              wasm_peak_gflops: peak.gflopsAll,
              bound_tokens_per_s: boundTokensPerS,
              bound_vs_torch:
                torch.result === null ? null : boundTokensPerS / torch.result.tokens_per_s,
            };
          })()
        : {};
    reporter.record({
      kernel: "lora_train_step",
      layers,
      batch: B,
      seq: T,
      r,
      impl: engine,
      threads,
      step_s: times.stepS,
      tokens_per_s: tokensPerS,
      peak_memory: times.peakMemory,
      torch_tokens_per_s: torch.result?.tokens_per_s ?? null,
      vs_torch: torch.result === null ? null : tokensPerS / torch.result.tokens_per_s,
      gemm_share: times.gemmMs / 1000 / times.stepS,
      gemm_gflop: times.gemmFlops / 1e9,
      ...bound,
    });
    reporter.record({
      kernel: "lora_train_step_prompt_masked",
      prompt_share: PROMPT_SHARE,
      layers,
      batch: B,
      seq: T,
      r,
      impl: engine,
      threads,
      step_s: times.maskedStepS,
      tokens_per_s: (B * T) / times.maskedStepS,
      torch_tokens_per_s: torchMasked.result?.tokens_per_s ?? null,
      vs_torch:
        torchMasked.result === null
          ? null
          : (B * T) / times.maskedStepS / torchMasked.result.tokens_per_s,
    });
  }
  {
    const heap = new Heap();
    const kernels = await createKernels("wasm", { heap, threads });
    try {
      const total = quick ? 200 : 1000;
      const { model, trainable, vocab } = await loraModel(
        kernels,
        { layers: 2, hidden: 128, intermediate: 344, heads: 4, vocab: 512 },
        r,
      );
      const data = new FixedBatches(randomBatches(vocab, 4, 4, 64));
      let early = { heap: 0, rss: 0 };
      await train(trainable, data, {
        steps: total,
        lr: 1e-3,
        log: (record) => {
          if (record.type === "train" && record.step === 10)
            early = { heap: heap.bytesInUse, rss: process.memoryUsage().rss };
        },
      });
      const late = { heap: heap.bytesInUse, rss: process.memoryUsage().rss };
      reporter.record({
        kernel: "lora_train_memory",
        steps: total,
        heap_bytes_step10: early.heap,
        heap_bytes_last: late.heap,
        rss_step10: early.rss,
        rss_last: late.rss,
        rss_growth_mib: (late.rss - early.rss) / 2 ** 20,
      });
      model.dispose();
    } finally {
      await kernels.dispose();
    }
  }
}
