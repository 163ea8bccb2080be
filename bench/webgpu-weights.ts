// `npm run bench -- webgpu-weights` (`--quick`: 2 timed steps instead of 4): what the storage of the frozen weights costs a LoRA training
// step on the webgpu engine (models/weights.ts): f32 on the heap (read as they are), bf16 on the
// heap (widened by kernels.convert per use), nf4 (codes on the heap, kernels.dequantize per use),
// bf16 offloaded (its 2-byte form uploaded per use and widened by kernels.convert) and f32
// offloaded (copied into the scratch and uploaded per use). One synthetic Llama (a
// random BF16 checkpoint, bench/real-size.ts' writer), LoRA r 16 on every linear but lm_head,
// AdamW, one batch; per variant: seconds per step (the mean of the steps after the first, which
// compiles and plans) and the bytes the host uploads per step (Kernels.upload calls with tensors,
// counted by a wrapper: the offloaded weights, the batch's ids and targets), and what the same
// uploads weighed when offloaded 16-bit weights were expanded on the host and sent in f32 (each
// uploaded bf16 / f16 tensor counted at 4 bytes per element: the previous design).
// On a software adapter (lavapipe) the times measure a CPU emulating a GPU: the bytes per step are
// what carries over to a real GPU, where they cross the PCIe link.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Kernels } from "../src/kernels/kernels.js";
import { createWebGpuKernels } from "../src/kernels/webgpu/index.js";
import { loadModel } from "../src/models/model.js";
import type { QuantizeKind } from "../src/models/weights.js";
import { LoraConfig } from "../src/peft/config.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { Heap } from "../src/tensor/heap.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { createOptimizer } from "../src/train/optimizer.js";
import { Rng } from "../src/util/random.js";
import { writeRandomCheckpoint } from "./real-size.js";
import type { Reporter } from "./report.js";

const CONFIG = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 1024,
  hidden_size: 256,
  intermediate_size: 704,
  num_hidden_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  max_position_embeddings: 1024,
  rope_theta: 10000.0,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  hidden_act: "silu",
  torch_dtype: "bfloat16",
};

const MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

interface Variant {
  name: string;
  weightDtype: "f32" | "bf16";
  quantize?: QuantizeKind;
  offload: "on" | "off";
}

const VARIANTS: Variant[] = [
  { name: "f32 heap", weightDtype: "f32", offload: "off" },
  { name: "bf16 heap (device convert)", weightDtype: "bf16", offload: "off" },
  { name: "nf4 (device dequantize)", weightDtype: "f32", quantize: "nf4", offload: "off" },
  { name: "bf16 offloaded (2-byte upload, device convert)", weightDtype: "bf16", offload: "on" },
  { name: "f32 offloaded (host copy + upload)", weightDtype: "f32", offload: "on" },
];

/**
 * Counts the bytes of the tensors passed to kernels.upload from now on (`bytes`), and the same
 * with every 16-bit tensor at 4 bytes per element (`asF32`: had it been expanded on the host).
 */
function countUploads(kernels: Kernels): { bytes: number; asF32: number } {
  const counter = { bytes: 0, asF32: 0 };
  const upload = kernels.upload.bind(kernels);
  kernels.upload = (...tensors: Tensor[]) => {
    for (const t of tensors) {
      counter.bytes += t.byteLength;
      counter.asF32 += t.dtype === "bf16" || t.dtype === "f16" ? 4 * t.size : t.byteLength;
    }
    upload(...tensors);
  };
  return counter;
}

async function runVariant(dir: string, v: Variant, steps: number, T: number) {
  const kernels = await createWebGpuKernels(new Heap());
  try {
    const model = await loadModel(dir, {
      kernels,
      weightDtype: v.weightDtype,
      offloadFrozen: v.offload,
    });
    const peft = getPeftModel(
      model,
      new LoraConfig({ r: 16, lora_alpha: 32, target_modules: MODULES }),
      { seed: 1 },
    );
    // adapters attach to float weights; then the base is quantized (QLoRA-style)
    if (v.quantize !== undefined) model.quantizeLinears(v.quantize);
    const params = peft
      .parameters()
      .map((p) => ({ name: p.name, param: p.param, grad: p.grad as Tensor }));
    const optimizer = createOptimizer(kernels, params, { kind: "adamw" });
    const rng = new Rng(7);
    const inputIds = Int32Array.from({ length: T }, () => rng.below(model.vocabSize));
    const batch = { batchSize: 1, seqLen: T, inputIds, labels: inputIds.slice() };
    const lossOut = kernels.heap.zeros([1]);
    kernels.upload();
    const uploads = countUploads(kernels);
    const times: number[] = [];
    let uploaded = 0;
    let uploadedAsF32 = 0;
    let loss = 0;
    for (let s = 0; s < steps; s++) {
      if (s === 1) {
        uploads.bytes = 0;
        uploads.asF32 = 0;
      }
      const t0 = performance.now();
      peft.zeroGrad();
      model.lossAndGrads(batch, { lossOut });
      optimizer.update(1e-4);
      await kernels.download(lossOut);
      times.push((performance.now() - t0) / 1000);
      loss = lossOut.f32()[0];
    }
    uploaded = uploads.bytes / Math.max(1, steps - 1);
    uploadedAsF32 = uploads.asF32 / Math.max(1, steps - 1);
    const timed = times.slice(1);
    const stepS = timed.reduce((a, x) => a + x, 0) / timed.length;
    const bytes = model.linearWeightBytes();
    optimizer.dispose();
    peft.dispose();
    model.dispose();
    return { stepS, uploaded, uploadedAsF32, loss, heap: bytes.heap, offHeap: bytes.offHeap };
  } finally {
    await kernels.dispose();
  }
}

export async function webgpuWeightsSuite(
  reporter: Reporter,
  options: { quick: boolean },
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "loraga-bench-webgpu-weights-"));
  try {
    await writeRandomCheckpoint(dir, CONFIG);
    const steps = options.quick ? 3 : 5;
    const T = 64;
    reporter.note(
      `synthetic Llama (hidden ${CONFIG.hidden_size}, ${CONFIG.num_hidden_layers} layers), 1 x ${T} tokens, LoRA r 16, ${steps - 1} timed steps`,
    );
    for (const v of VARIANTS) {
      const r = await runVariant(dir, v, steps, T);
      reporter.record({
        weights: v.name,
        step_s: r.stepS,
        uploaded_mib_per_step: r.uploaded / 2 ** 20,
        host_expanded_mib_per_step: r.uploadedAsF32 / 2 ** 20,
        linear_heap_mib: r.heap / 2 ** 20,
        linear_off_heap_mib: r.offHeap / 2 ** 20,
        last_loss: r.loss,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
