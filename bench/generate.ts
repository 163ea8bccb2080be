// Generation benchmark: greedy decoding of 64 new tokens for 4 prompts of different lengths on a
// random Llama (4 layers, hidden 256, 4 heads, intermediate 688, vocab 8192), with the KV cache
// (train/generate.ts) and without it (the full forward over every sequence per new token, the
// algorithm generate used before the cache, written out here). Reports new tokens/s of each and
// the speed-up; checks that both produce the same tokens. Kernels: "wasm" on all threads (when the
// wasm kernels load) and "ref" (1 thread; 16 new tokens: its no-cache leg alone takes minutes at
// 64). --quick: 16 new tokens, wasm only.
// Measured (2-core dev VM, 64 tokens): wasm 383 tokens/s cached vs 39 without (9.7x);
// ref 28.5 vs 1.07 (27x).

import { createKernels } from "../src/kernels/index.js";
import type { Kernels, KernelsName } from "../src/kernels/kernels.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import type { CausalLM } from "../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../src/models/random.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { generate } from "../src/train/generate.js";
import { Rng } from "../src/util/random.js";
import type { Reporter } from "./report.js";

const SIZE = { layers: 4, hidden: 256, intermediate: 688, heads: 4, vocab: 8192 };
const PROMPT_LENGTHS = [16, 24, 32, 8];

/** Greedy decoding by a full forward of every (right-padded) sequence per new token: O(T^2). */
function greedyWithoutCache(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  maxNewTokens: number,
): number[][] {
  const seqs = prompts.map((p) => [...p]);
  for (let s = 0; s < maxNewTokens; s++) {
    const B = seqs.length;
    const T = Math.max(...seqs.map((q) => q.length));
    const inputIds = new Int32Array(B * T);
    const attentionMask = new Int32Array(B * T);
    seqs.forEach((q, b) => {
      inputIds.set(q, b * T);
      attentionMask.fill(1, b * T, b * T + q.length);
    });
    const logits = model.forward({ batchSize: B, seqLen: T, inputIds, attentionMask }).f32(); // (B, T, V)
    const V = logits.length / (B * T);
    seqs.forEach((q, b) => {
      const at = (b * T + q.length - 1) * V;
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[at + v] > logits[at + best]) best = v;
      q.push(best);
    });
  }
  return seqs.map((q, b) => q.slice(prompts[b].length));
}

async function tryKernels(
  name: KernelsName,
  heap: Heap,
  threads: number,
): Promise<Kernels | string> {
  try {
    return await createKernels(name, { heap, threads });
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

export async function generateSuite(
  reporter: Reporter,
  options: { quick: boolean },
): Promise<void> {
  const wasmTokens = options.quick ? 16 : 64;
  const config = syntheticLlamaConfig(SIZE);
  const rng = new Rng(7);
  const prompts = PROMPT_LENGTHS.map((len) =>
    Array.from({ length: len }, () => rng.below(SIZE.vocab)),
  );
  reporter.note(
    `llama ${SIZE.layers} layers, hidden ${SIZE.hidden}, ${SIZE.heads} heads, intermediate ${SIZE.intermediate}, vocab ${SIZE.vocab}; ` +
      `${prompts.length} prompts of ${PROMPT_LENGTHS.join("/")} tokens, greedy`,
  );
  const backends: [KernelsName, number, number][] = [["wasm", await cpuCount(), wasmTokens]];
  if (!options.quick) backends.push(["ref", 1, 16]);
  for (const [name, threads, newTokens] of backends) {
    const heap = new Heap({ initialBytes: 256 * 2 ** 20 });
    const kernels = await tryKernels(name, heap, threads);
    if (typeof kernels === "string") {
      reporter.note(`${name} kernels skipped: ${kernels}`);
      continue;
    }
    const model = await createLlama(
      config,
      randomCheckpoint(llamaParamSpecs(config), 1),
      kernels,
      "(random)",
    );
    try {
      await generate(model, prompts, { maxNewTokens: 2 }); // warm-up (wasm compile, first allocations)
      let t0 = performance.now();
      const cached = await generate(model, prompts, { maxNewTokens: newTokens });
      const cachedMs = performance.now() - t0;
      t0 = performance.now();
      const full = greedyWithoutCache(model, prompts, newTokens);
      const fullMs = performance.now() - t0;
      const total = prompts.length * newTokens;
      reporter.record({
        kernels: name,
        threads,
        new_tokens: newTokens,
        kv_cache_tokens_per_s: total / (cachedMs / 1000),
        no_cache_tokens_per_s: total / (fullMs / 1000),
        speedup: fullMs / cachedMs,
        same_tokens: JSON.stringify(cached) === JSON.stringify(full),
      });
    } finally {
      model.dispose();
      await kernels.dispose();
    }
  }
}
