// LoRA-GA gradient estimation at real size (issue 14): a random checkpoint with Qwen2.5-0.5B's
// shapes (config below; weights N(0, 0.02^2) from src/models/random.ts, stored as BF16) is written
// to a temporary folder, then both sides estimate the gradients of every linear but lm_head over
// one 2 x 256 batch on that checkpoint, in the same run:
//   loraga        `loraga estimate --target all-linear` in process (the model load is timed apart),
//                 on the auto engine (native when built), in two configurations (LORAGA_CONFIGS):
//                 f32 weights with the gradients moved off the heap as each layer finishes
//                 (`--max-grad-memory 256MiB`), and bf16 weights with `--gradient-checkpointing`
//   PyTorch+PEFT  preprocess_loraga with f32 weights, 2 threads (bench/real_size_torch.py)
// Each record's vs_torch is PyTorch's estimate time over that configuration's (> 1: loraga is
// faster). The job takes minutes and about 8 GB of memory, so `--quick` skips it.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { targetLinears } from "../src/cli/options/lora.js";
import { estimateGradients } from "../src/cli/workflow/estimate-init.js";
import type { LlamaFamilyConfig } from "../src/io/hf-config.js";
import { parseModelConfig } from "../src/io/hf-config.js";
import { type TensorToWrite, writeSafetensors } from "../src/io/safetensors.js";
import { createKernels } from "../src/kernels/index.js";
import { llamaParamSpecs } from "../src/models/llama.js";
import { loadModel } from "../src/models/model.js";
import { randomCheckpoint } from "../src/models/random.js";
import { cpuCount } from "../src/platform/threads.js";
import { f32ToBf16 } from "../src/tensor/dtype.js";
import { Heap } from "../src/tensor/heap.js";
import { Rng } from "../src/util/random.js";
import type { Reporter } from "./report.js";
import { runTorchSide } from "./torch-side.js";

/** Qwen2.5-0.5B's config.json (the fields that shape the model). */
export const QWEN25_05B = {
  model_type: "qwen2",
  architectures: ["Qwen2ForCausalLM"],
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rope_theta: 1000000.0,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  hidden_act: "silu",
  torch_dtype: "bfloat16",
};
const BATCH = 2;
const SEQ = 256;

/** How loraga runs the job: weight dtype, checkpointing, and the estimation's heap budget. */
interface LoragaConfig {
  name: string;
  weightDtype: "f32" | "bf16";
  checkpointing: boolean;
  maxGradMemory: number | undefined;
}
const LORAGA_CONFIGS: LoragaConfig[] = [
  {
    name: "f32, --max-grad-memory 256MiB",
    weightDtype: "f32",
    checkpointing: false,
    maxGradMemory: 2 ** 28,
  },
  {
    name: "bf16, --gradient-checkpointing",
    weightDtype: "bf16",
    checkpointing: true,
    maxGradMemory: undefined,
  },
];

/**
 * Writes `configJson` as config.json and a BF16 model.safetensors of seeded random weights (from
 * src/models/random.ts) into `dir`; the config must be a llama-family one.
 */
export async function writeRandomCheckpoint(
  dir: string,
  configJson: Record<string, unknown>,
): Promise<void> {
  const config = parseModelConfig(configJson) as LlamaFamilyConfig;
  const specs = llamaParamSpecs(config);
  const source = randomCheckpoint(specs, 1);
  const heap = new Heap();
  const tensors: TensorToWrite[] = [];
  for (const spec of specs) {
    const t = heap.tensor([...spec.shape]);
    source.readInto(spec.name, t);
    const f32 = t.f32();
    const bits = new Uint16Array(f32.length);
    for (let i = 0; i < f32.length; i++) bits[i] = f32ToBf16(f32[i]);
    tensors.push({ name: spec.name, dtype: "BF16", shape: [...spec.shape], data: bits });
    t.dispose();
  }
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(configJson, null, 2)}\n`);
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
}

async function loragaSide(
  dir: string,
  config: LoragaConfig,
): Promise<Record<string, number | string>> {
  const heap = new Heap();
  let engine = "";
  const kernels = await createKernels("auto", {
    heap,
    threads: await cpuCount(),
    onFallback: (reason) => {
      engine = `wasm (${reason})`;
    },
  });
  try {
    const t0 = performance.now();
    const model = await loadModel(dir, { kernels, weightDtype: config.weightDtype });
    model.setMemoryOptions({ gradient_checkpointing: config.checkpointing });
    const loadS = (performance.now() - t0) / 1000;
    const rng = new Rng(7);
    const inputIds = Int32Array.from({ length: BATCH * SEQ }, () => rng.below(model.vocabSize));
    const batch = { batchSize: BATCH, seqLen: SEQ, inputIds, labels: inputIds.slice() };
    const targets = targetLinears(model, "all-linear");
    const settings = { target: "all-linear", maxGradMemory: config.maxGradMemory, quiet: true };
    const result = await estimateGradients(model, [batch], targets, settings);
    const peakMiB = heap.peakBytes / 2 ** 20;
    model.dispose();
    return {
      loraga: config.name,
      engine: engine === "" ? kernels.name : engine,
      targets: targets.length,
      load_s: loadS,
      estimate_s: result.seconds,
      peak_mib: peakMiB,
    };
  } finally {
    await kernels.dispose();
  }
}

export async function realSizeSuite(
  reporter: Reporter,
  options: { quick: boolean },
): Promise<void> {
  if (options.quick) {
    reporter.note("real-size: skipped with --quick (minutes, ~8 GB)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "loraga-real-size-"));
  try {
    const model = join(dir, "qwen2.5-0.5b-random");
    mkdirSync(model);
    const t0 = performance.now();
    await writeRandomCheckpoint(model, QWEN25_05B);
    reporter.note(
      `random Qwen2.5-0.5B-shaped checkpoint (BF16) written in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const ours = [];
    for (const config of LORAGA_CONFIGS) ours.push(await loragaSide(model, config));
    const torch = runTorchSide("real_size_torch.py", [model, BATCH, SEQ]);
    if (torch.result === null) reporter.note(`  PyTorch/PEFT side skipped: ${torch.why}`);
    const torchS = torch.result?.estimate_s ?? null;
    for (const row of ours) {
      reporter.record({
        job: "estimate all-linear, 1 batch 2 x 256, Qwen2.5-0.5B shapes",
        ...row,
        torch_estimate_s: torchS,
        torch_load_s: torch.result?.load_s ?? null,
        vs_torch: torchS === null ? null : torchS / Number(row.estimate_s),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
