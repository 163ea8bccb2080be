// Memory against sequence length (issue 15) on a synthetic Llama: peak engine memory and tokens/s
// of one LoRA training step (adapters on every linear but lm_head) and of one LoRA-GA gradient
// estimation pass (gradients of every linear weight but lm_head, the `loraga estimate --target
// all-linear` workload), at T = 256, 512, 1024, 2048, for each memory layout (MemoryOptions):
//   plain       the whole (T, vocab) logits at once, every layer's activations kept
//   chunked     lm_head + cross-entropy in row chunks of at most 64 MiB of logits
//   ckpt        gradient checkpointing (layer inputs kept, each layer recomputed in backward)
//   chunked+ckpt both
// all four with the default tiled attention (models/attention.ts), and the last two again with
// the full attention ("... full-attn": every layer's (T, T) probabilities per head kept).
// Engine memory is heap.peakBytes over the step (weights and adapters included); "stepMiB" is
// the part above what was in use before the step (activations, logits, gradient accumulators),
// and "xPrev" its ratio to the same layout's at half the length (2 = linear growth, 4 =
// quadratic). The first step of a layout plans its buffers (measured for memory); the second is
// timed.

import { createKernels } from "../src/kernels/index.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import type { Batch, MemoryOptions } from "../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../src/models/random.js";
import { LoraConfig } from "../src/peft/config.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/util/random.js";
import type { Reporter } from "./report.js";

const MIB = 2 ** 20;
/** A chunk bound no (T, vocab) block reaches: the head runs on every row at once. */
const UNCHUNKED = Number.MAX_SAFE_INTEGER;

const LAYOUTS: { name: string; options: MemoryOptions }[] = [
  { name: "plain", options: { gradient_checkpointing: false, logitsChunkBytes: UNCHUNKED } },
  { name: "chunked", options: { gradient_checkpointing: false, logitsChunkBytes: 64 * MIB } },
  { name: "ckpt", options: { gradient_checkpointing: true, logitsChunkBytes: UNCHUNKED } },
  { name: "chunked+ckpt", options: { gradient_checkpointing: true, logitsChunkBytes: 64 * MIB } },
].flatMap(({ name, options }) => [
  { name, options: { ...options, attention: "tiled" as const } },
  ...(name.startsWith("chunked")
    ? [{ name: `${name} full-attn`, options: { ...options, attention: "full" as const } }]
    : []),
]);

function batchOf(vocab: number, T: number, seed: number): Batch {
  const rng = new Rng(seed);
  const inputIds = Int32Array.from({ length: T }, () => rng.below(vocab));
  return { batchSize: 1, seqLen: T, inputIds, labels: inputIds.slice() };
}

export async function memoryScaleSuite(
  reporter: Reporter,
  options: { quick: boolean },
): Promise<void> {
  const size = options.quick
    ? { layers: 4, hidden: 256, intermediate: 688, heads: 4, vocab: 32000 }
    : { layers: 8, hidden: 512, intermediate: 1376, heads: 8, vocab: 32000 };
  const lengths = [256, 512, 1024, 2048];
  const config = syntheticLlamaConfig(size);
  const heap = new Heap();
  const kernels = await createKernels("wasm", { heap, threads: await cpuCount() });
  const model = await createLlama(
    config,
    randomCheckpoint(llamaParamSpecs(config), 1),
    kernels,
    "(synthetic)",
  );
  reporter.note(
    `synthetic llama: ${size.layers} layers, hidden ${size.hidden}, intermediate ${size.intermediate}, ` +
      `${size.heads} heads, vocab ${size.vocab}; batch 1 x T; wasm engine; weights ${(heap.bytesInUse / MIB).toFixed(1)} MiB`,
  );
  const linearWeights = model
    .linears()
    .filter((l) => l.path !== "lm_head")
    .map((l) => l.weightName);
  try {
    for (const phase of ["train", "estimate"] as const) {
      // train: LoRA r=8 adapters on every linear but lm_head; estimate: their weights' gradients
      const peft =
        phase === "train"
          ? getPeftModel(
              model,
              new LoraConfig({ r: 8, lora_alpha: 16, target_modules: "all-linear" }),
            )
          : null;
      const grads = new Map<string, Tensor>();
      if (phase === "estimate") {
        for (const name of linearWeights)
          grads.set(name, heap.zeros(model.params.get(name)?.shape as number[]));
      }
      const previous = new Map<string, number>(); // layout -> stepMiB at the previous length
      try {
        for (const T of lengths) {
          const batch = batchOf(size.vocab, T, T);
          for (const layout of LAYOUTS) {
            model.setMemoryOptions(layout.options); // frees the previous plan
            const step = (): number => {
              peft?.zeroGrad();
              return model.lossAndGrads(batch, phase === "estimate" ? { paramGrads: grads } : {})
                .loss;
            };
            const before = heap.bytesInUse;
            heap.resetPeak();
            const loss = step();
            const peak = heap.peakBytes;
            const t0 = performance.now();
            step();
            const ms = performance.now() - t0;
            const stepMiB = (peak - before) / MIB;
            const prev = previous.get(layout.name);
            previous.set(layout.name, stepMiB);
            reporter.record({
              phase,
              T,
              layout: layout.name,
              peakMiB: peak / MIB,
              stepMiB,
              xPrev: prev === undefined ? null : stepMiB / prev,
              tokensPerS: (T * 1000) / ms,
              loss,
            });
          }
        }
      } finally {
        for (const g of grads.values()) g.dispose();
        peft?.dispose();
      }
    }
  } finally {
    model.dispose();
    await kernels.dispose();
  }
}
