// Memory benchmark (issue: memory-bounded estimation, 16-bit and quantized frozen weights) on a
// synthetic Llama: peak engine memory of LoRA-GA gradient estimation, plain vs bounded (and the
// largest gradient difference between them), then of LoRA training steps (forward + backward +
// AdamW on the adapters) with the frozen weights in f32, bf16, f16, int8 and NF4 — int8 / NF4
// quantized AFTER the LoRA-GA init (two-stage flow) — with the logits error vs the f32 model.
// Engine memory is heap.peakBytes (the wasm32 memory, 4 GiB at most); quantized codes live off the
// heap and are reported separately ("offHeapMiB").

import { createKernels } from "../src/kernels/index.js";
import type { Kernels } from "../src/kernels/kernels.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import type { Batch, CausalLM } from "../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../src/models/random.js";
import type { WeightLoadOptions, WeightStorageKind } from "../src/models/weights.js";
import { LoraGAConfig } from "../src/peft/config.js";
import { estimateGradient } from "../src/peft/estimate.js";
import type { GradientMap } from "../src/peft/gradient-cache.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/util/random.js";
import type { Reporter } from "./report.js";

const MIB = 2 ** 20;

function batchOf(vocab: number, T: number, seed: number): Batch {
  const rng = new Rng(seed);
  const inputIds = Int32Array.from({ length: T }, () => rng.below(vocab));
  return { batchSize: 1, seqLen: T, inputIds, labels: inputIds.slice() };
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    ref = Math.max(ref, Math.abs(b[i]));
  }
  return ref > 0 ? diff / ref : diff;
}

export async function memorySuite(reporter: Reporter, options: { quick: boolean }): Promise<void> {
  const size = options.quick
    ? { layers: 2, hidden: 256, intermediate: 688, heads: 4, vocab: 2000 }
    : { layers: 8, hidden: 512, intermediate: 1376, heads: 8, vocab: 8000 };
  const T = options.quick ? 32 : 128;
  const steps = options.quick ? 2 : 3;
  const config = syntheticLlamaConfig(size);
  const specs = llamaParamSpecs(config);
  const threads = await cpuCount();
  const batches = [0, 1, 2].map((s) => batchOf(size.vocab, T, s));
  reporter.note(
    `synthetic llama: ${size.layers} layers, hidden ${size.hidden}, intermediate ${size.intermediate}, vocab ${size.vocab}; ` +
      `batch 1 x ${T}; ${batches.length} estimation batches; LoRA-GA r=8 on q,k,v,o,gate,up,down`,
  );
  const open = async (
    storage: WeightLoadOptions,
  ): Promise<{ model: CausalLM; kernels: Kernels; heap: Heap }> => {
    const heap = new Heap();
    const kernels = await createKernels("wasm", { heap, threads });
    const model = await createLlama(
      config,
      randomCheckpoint(specs, 1),
      kernels,
      "(synthetic)",
      storage,
    );
    return { model, kernels, heap };
  };

  // 1. estimation: plain vs bounded
  let grads: GradientMap | null = null;
  {
    const { model, kernels, heap } = await open({});
    const targets = model
      .linears()
      .filter((l) => l.path !== "lm_head")
      .map((l) => l.path);
    const weights = heap.bytesInUse;
    const runs: { name: string; budget?: number }[] = [
      { name: "plain" },
      { name: "bounded", budget: Math.ceil((size.hidden * size.intermediate * 4 * 3) / 1) }, // about one MLP
    ];
    for (const run of runs) {
      const t0 = performance.now();
      const result = await estimateGradient(model, batches, {
        targets,
        ...(run.budget !== undefined && { memoryBudget: run.budget }),
      });
      const ms = performance.now() - t0;
      const diff =
        grads === null
          ? 0
          : Math.max(
              ...targets.map((p) =>
                maxRel(
                  result.grads.get(p)?.data as Float32Array,
                  grads?.get(p)?.data as Float32Array,
                ),
              ),
            );
      grads ??= result.grads;
      reporter.record({
        phase: "estimate",
        mode: run.name,
        passes: result.memory.passes,
        weightsMiB: weights / MIB,
        heapGradMiB: result.memory.heapGradBytes / MIB,
        movedOutMiB: result.memory.movedOutBytes / MIB,
        peakMiB: result.memory.peakBytes / MIB,
        maxRelDiffVsPlain: diff,
        ms,
      });
    }
    model.dispose();
    await kernels.dispose();
  }
  if (grads === null) return;

  // 2. training steps on the LoRA-GA-initialised model, per storage of the frozen weights
  let f32Logits: Float32Array | null = null;
  for (const kind of ["f32", "bf16", "f16", "int8", "nf4"] as WeightStorageKind[]) {
    const storage: WeightLoadOptions =
      kind === "bf16" || kind === "f16" ? { weightDtype: kind } : {};
    const { model, kernels, heap } = await open(storage);
    const peft = getPeftModel(
      model,
      new LoraGAConfig({
        r: 8,
        lora_alpha: 16,
        target_modules: [
          "q_proj",
          "k_proj",
          "v_proj",
          "o_proj",
          "gate_proj",
          "up_proj",
          "down_proj",
        ],
      }),
      { namedGrad: grads },
    );
    if (kind === "int8" || kind === "nf4") model.quantizeLinears(kind); // two-stage: quantize W'
    const logits = model.forward(batches[0]).toArray();
    f32Logits ??= logits;
    const params = peft.parameters();
    const state = params.map((p) => ({
      m: heap.zeros(p.param.shape),
      v: heap.zeros(p.param.shape),
    }));
    heap.resetPeak();
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      peft.zeroGrad();
      model.lossAndGrads(batches[s % batches.length]);
      params.forEach((p, i) => {
        const st = state[i];
        kernels.adamw(p.param, p.grad as Tensor, st.m, st.v, {
          lr: 1e-4,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0,
          step: s + 1,
        });
      });
    }
    const ms = (performance.now() - t0) / steps;
    const w = model.linearWeightBytes();
    reporter.record({
      phase: "train",
      weights: kind,
      linearHeapMiB: w.heap / MIB,
      offHeapMiB: w.offHeap / MIB,
      scratchMiB: w.scratch / MIB,
      peakMiB: heap.peakBytes / MIB,
      totalMiB: (heap.peakBytes + w.offHeap) / MIB,
      logitsRelErrVsF32: maxRel(logits, f32Logits),
      msPerStep: ms,
    });
    for (const st of state) {
      st.m.dispose();
      st.v.dispose();
    }
    peft.dispose();
    model.dispose();
    await kernels.dispose();
  }
}
