// T5-base LoRA training step (issue 16: the LoRA-GA paper's GLUE setting): seconds per step
// (encoder-decoder forward, backward into the adapters, AdamW) of a random T5-base-shaped model
// (T5 v1.0: d_model 768, 12 + 12 layers, 12 heads of d_kv 64, d_ff 3072, ReLU, vocab 32128, tied
// rescaled head; weights N(0, 0.02^2) from src/models/random.ts), r = 8 (alpha 16) on
// q,k,v,o,wi,wo of both stacks, batch 8 x 128 input tokens -> 4 target tokens (GLUE's inputs
// and label words), on the wasm engine and, when built, the native one (all threads); and
// PyTorch + PEFT on CPU (2 threads, dropout off), same shapes, in the same run
// (bench/t5_train_torch.py). vs_torch = PyTorch's step time / loraga's (> 1: loraga is faster).
// Two timed steps after one warm-up step on each side. --quick: 2 + 2 layers, batch 2.

import { parseModelConfig, type T5Config } from "../src/io/hf-config.js";
import { createKernels } from "../src/kernels/index.js";
import type { Batch } from "../src/models/model.js";
import { randomCheckpoint } from "../src/models/random.js";
import { createT5 } from "../src/models/t5.js";
import { t5DimsOf, t5ParamSpecs } from "../src/models/t5-plan.js";
import { LoraConfig } from "../src/peft/config.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { FixedBatches } from "../src/train/data-order.js";
import { Rng } from "../src/util/random.js";
import { cpuEngines, trainStepSeconds } from "./cpu-training.js";
import type { Reporter } from "./report.js";
import { runTorchSide } from "./torch-side.js";

const TARGETS = ["q", "k", "v", "o", "wi", "wo"];
const R = 8;

/** t5-base's config.json (the fields that shape the model), with `layers` per stack. */
function t5BaseConfig(layers: number): T5Config {
  const config = parseModelConfig({
    model_type: "t5",
    architectures: ["T5ForConditionalGeneration"],
    vocab_size: 32128,
    d_model: 768,
    d_kv: 64,
    d_ff: 3072,
    num_layers: layers,
    num_decoder_layers: layers,
    num_heads: 12,
    relative_attention_num_buckets: 32,
    relative_attention_max_distance: 128,
    feed_forward_proj: "relu",
    layer_norm_epsilon: 1e-6,
    tie_word_embeddings: true,
    pad_token_id: 0,
    eos_token_id: 1,
    decoder_start_token_id: 0,
  });
  if (!config.recognized || config.model_type !== "t5")
    throw new Error("internal: not a t5 config");
  return config;
}

/** Random seq2seq batches: (B, Te) encoder ids (all real tokens), (B, Td) targets. */
function randomBatches(vocab: number, count: number, B: number, Te: number, Td: number): Batch[] {
  const rng = new Rng(5);
  return Array.from({ length: count }, () => ({
    batchSize: B,
    seqLen: Te,
    inputIds: Int32Array.from({ length: B * Te }, () => 2 + rng.below(vocab - 2)),
    attentionMask: new Int32Array(B * Te).fill(1),
    decoder: { seqLen: Td, labels: Int32Array.from({ length: B * Td }, () => rng.below(vocab)) },
  }));
}

async function measureT5Steps(
  reporter: Reporter,
  engine: "wasm" | "native",
  {
    layers,
    B,
    Te,
    Td,
    steps,
  }: { layers: number; B: number; Te: number; Td: number; steps: number },
  threads: number,
): Promise<{ stepS: number; peakMemory: number }> {
  const heap = new Heap();
  const kernels = await createKernels(engine, { heap, threads });
  try {
    const config = t5BaseConfig(layers);
    const specs = t5ParamSpecs(t5DimsOf(config, true));
    const model = await createT5(config, randomCheckpoint(specs, 1), kernels, "(random)");
    const trainable = getPeftModel(
      model,
      new LoraConfig({ r: R, lora_alpha: 16, target_modules: TARGETS }),
      { seed: 0 },
    );
    reporter.note(
      `T5-base LoRA training: ${layers} + ${layers} layers, batch ${B} x ${Te} -> ${Td}, r = ${R} on ${TARGETS.join(",")}; ${engine}, ${threads} threads`,
    );
    const data = new FixedBatches(randomBatches(config.vocab_size, 2, B, Te, Td));
    const stepS = await trainStepSeconds(trainable, data, steps);
    model.dispose();
    return { stepS, peakMemory: heap.peakBytes };
  } finally {
    await kernels.dispose();
  }
}

export async function t5TrainSuite(
  reporter: Reporter,
  { quick }: { quick: boolean },
): Promise<void> {
  const threads = await cpuCount();
  const [layers, B, Te, Td, steps] = quick ? [2, 2, 128, 4, 2] : [12, 8, 128, 4, 2];
  const measured = [];
  for (const engine of cpuEngines(reporter)) {
    const times = await measureT5Steps(reporter, engine, { layers, B, Te, Td, steps }, threads);
    measured.push({ engine, times });
  }
  const torch = runTorchSide("t5_train_torch.py", [layers, B, Te, Td, R, steps]);
  if (torch.result === null) reporter.note(`  PyTorch/PEFT side skipped: ${torch.why}`);
  for (const { engine, times } of measured) {
    reporter.record({
      kernel: "t5_lora_train_step",
      layers,
      batch: B,
      input: Te,
      target: Td,
      r: R,
      impl: engine,
      threads,
      step_s: times.stepS,
      peak_memory: times.peakMemory,
      torch_step_s: torch.result?.step_s ?? null,
      vs_torch: torch.result === null ? null : torch.result.step_s / times.stepS,
    });
  }
}
