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
// bf16 (when the native engine runs GEMMs against bf16 weights: AVX512-BF16): the same LoRA step
// with the frozen base stored in bf16 (`weightDtype: "bf16"`), beside PyTorch's f32 step and its
// two bf16 paths, bf16 autocast and a bf16 base under autocast (lora_train_torch.py PRECISION), so
// the gap to PyTorch's fastest CPU path stays visible.

import { createKernels } from "../src/kernels/index.js";
import type { Kernels } from "../src/kernels/kernels.js";
import { nativeAvailability } from "../src/kernels/native/index.js";
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
  weightDtype: "f32" | "bf16" = "f32",
) {
  const config = syntheticLlamaConfig(size);
  const model: CausalLM = await createLlama(
    config,
    randomCheckpoint(llamaParamSpecs(config), 1),
    kernels,
    "(random)",
    { weightDtype },
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
  /** absent for the bf16 base (`maskedToo` false) */
  maskedStepS: number | undefined;
  peakMemory: number;
  gemmMs: number;
  gemmFlops: number;
}

/**
 * Seconds per LoRA step on one engine, with a full loss and (maskedToo) with a completion-only
 * loss; the frozen base stored as weightDtype.
 */
async function measureLoraSteps(
  reporter: Reporter,
  engine: "wasm" | "native",
  { layers, B, T, r, steps }: { layers: number; B: number; T: number; r: number; steps: number },
  threads: number,
  {
    weightDtype = "f32",
    maskedToo = true,
  }: { weightDtype?: "f32" | "bf16"; maskedToo?: boolean } = {},
): Promise<StepTimes> {
  const heap = new Heap();
  const kernels = await createKernels(engine, { heap, threads });
  try {
    const size = { layers, hidden: 512, intermediate: 1376, heads: 8, vocab: 32000 };
    const { model, trainable, vocab } = await loraModel(kernels, size, r, weightDtype);
    const data = new FixedBatches(randomBatches(vocab, 2, B, T));
    reporter.note(
      `LoRA training: Llama hidden 512, ${layers} layers, vocab 32000, batch ${B} x ${T}, r = ${r} on all linear layers, ${weightDtype} base; ${engine}, ${threads} threads`,
    );
    const meter = meterMatmul(kernels);
    const stepS = await trainStepSeconds(trainable, data, steps, () => meter.reset());
    meter.restore();
    // Completion-only loss, as supervised fine-tuning usually trains: the first half of every
    // row is a prompt with labels -100. loraga then runs the lm_head on the counted rows only
    // (decoder-base.ts headLoss); transformers computes logits for every position. Same steps,
    // same tokens per step on both sides.
    const masked = new FixedBatches(randomBatches(vocab, 2, B, T, PROMPT_SHARE));
    const maskedStepS = maskedToo ? await trainStepSeconds(trainable, masked, steps) : undefined;
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

/**
 * The LoRA step with a bf16 frozen base on the native engine (when its GEMMs take bf16 weights),
 * against PyTorch's f32 step (torchF32, measured by the caller) and its two bf16 paths.
 */
async function measureBf16Base(
  reporter: Reporter,
  job: { layers: number; B: number; T: number; r: number; steps: number },
  threads: number,
  torchF32: Record<string, number> | null,
): Promise<void> {
  const { layers, B, T, r, steps } = job;
  if (!nativeAvailability().ok) return; // cpuEngines has said why
  {
    const probe = await createKernels("native", { heap: new Heap(), threads: 1 });
    const bf16 = probe.bf16Matmul === true;
    await probe.dispose();
    if (!bf16) {
      reporter.note("bf16-base LoRA step skipped: the native engine has no bf16 GEMM on this CPU");
      return;
    }
  }
  const times = await measureLoraSteps(reporter, "native", job, threads, {
    weightDtype: "bf16",
    maskedToo: false,
  });
  const torchSide = (precision: string) => {
    const side = runTorchSide("lora_train_torch.py", [layers, B, T, r, steps, 0, precision]);
    if (side.result === null) reporter.note(`  PyTorch ${precision} side skipped: ${side.why}`);
    return side.result?.tokens_per_s ?? null;
  };
  const autocast = torchSide("autocast");
  const bf16Base = torchSide("bf16-base");
  const tokensPerS = (B * T) / times.stepS;
  const ratio = (torch: number | null | undefined) =>
    torch === null || torch === undefined ? null : tokensPerS / torch;
  reporter.record({
    kernel: "lora_train_step_bf16_base",
    layers,
    batch: B,
    seq: T,
    r,
    impl: "native",
    weight_dtype: "bf16",
    threads,
    step_s: times.stepS,
    tokens_per_s: tokensPerS,
    peak_memory: times.peakMemory,
    torch_f32_tokens_per_s: torchF32?.tokens_per_s ?? null,
    torch_autocast_bf16_tokens_per_s: autocast,
    torch_bf16_base_autocast_tokens_per_s: bf16Base,
    vs_torch_f32: ratio(torchF32?.tokens_per_s),
    vs_torch_autocast_bf16: ratio(autocast),
    vs_torch_bf16_base_autocast: ratio(bf16Base),
  });
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
    if (times.maskedStepS === undefined) continue;
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
  await measureBf16Base(reporter, { layers, B, T, r, steps }, threads, torch.result);
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
