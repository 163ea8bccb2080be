// Frozen weights off the engine heap (models/weights.ts offloadFrozen), measured on random BF16
// checkpoints with real models' shapes (bench/real-size.ts' writer), each job in its own process
// (bench/offload-job.ts: load, LoRA r 16 on every linear but lm_head, AdamW steps on one batch,
// gradient checkpointing, auto engine):
//   llama-3.2-1b  Llama-3.2-1B's shapes at 1 x 256: its frozen weights (linears bf16 + f32
//                 embedding = 3.0 GB) leave no room for training in the 4 GiB heap, so "auto"
//                 offloads them; peak engine heap, peak RSS, load time, seconds per step.
//   cost          SmolLM2-135M's shapes, where everything fits: the same job with f32 weights on
//                 the heap, bf16 on the heap and bf16 offloaded, tokens/s side by side.
// `--quick` runs only the cost comparison, shorter (the 1B job takes minutes and ~6 GB of RAM).

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeRandomCheckpoint } from "./real-size.js";
import type { Reporter } from "./report.js";

/** Llama-3.2-1B's config.json (the fields that shape the model). */
export const LLAMA32_1B = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 128256,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  max_position_embeddings: 131072,
  rope_theta: 500000.0,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  hidden_act: "silu",
  torch_dtype: "bfloat16",
};

/** SmolLM2-135M's config.json (the fields that shape the model). */
export const SMOLLM2_135M = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 8192,
  rope_theta: 100000.0,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  hidden_act: "silu",
  torch_dtype: "bfloat16",
};

/** Runs offload-job.js in a fresh node process; its JSON line, or the error. */
function job(args: readonly (string | number)[]): Record<string, number | string> {
  const here = dirname(fileURLToPath(import.meta.url));
  const script = join(here, "offload-job.js");
  if (!existsSync(script)) throw new Error(`${script} not found (run the compiled bench)`);
  const out = spawnSync(
    process.execPath,
    ["--experimental-wasm-relaxed-simd", script, ...args.map(String)],
    { encoding: "utf8", timeout: 1_800_000, maxBuffer: 16 * 2 ** 20 },
  );
  if (out.status !== 0) throw new Error(`offload job ${args.join(" ")}: ${out.stderr.trim()}`);
  const line = out.stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .at(-1);
  if (line === undefined) throw new Error(`offload job ${args.join(" ")}: no JSON output`);
  return JSON.parse(line) as Record<string, number | string>;
}

async function withCheckpoint(
  name: string,
  config: Record<string, unknown>,
  reporter: Reporter,
  run: (dir: string) => void,
): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "loraga-offload-"));
  try {
    const dir = join(root, name);
    mkdirSync(dir);
    const t0 = performance.now();
    await writeRandomCheckpoint(dir, config);
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    reporter.note(`random ${name}-shaped checkpoint (BF16) written in ${s} s`);
    run(dir);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export async function offloadSuite(reporter: Reporter, options: { quick: boolean }): Promise<void> {
  const T = options.quick ? 128 : 256;
  const steps = options.quick ? 2 : 3;
  await withCheckpoint("smollm2-135m", SMOLLM2_135M, reporter, (dir) => {
    for (const [dtype, offload] of [
      ["f32", "off"],
      ["bf16", "off"],
      ["bf16", "on"],
    ] as const) {
      reporter.record({
        job: `LoRA steps 1 x ${T}, SmolLM2-135M shapes`,
        weights: `${dtype} ${offload === "on" ? "offloaded" : "on heap"}`,
        ...job([dir, dtype, offload, 1, T, steps]),
      });
    }
  });
  if (options.quick) {
    reporter.note("offload: Llama-3.2-1B job skipped with --quick (minutes, ~6 GB)");
    return;
  }
  await withCheckpoint("llama-3.2-1b", LLAMA32_1B, reporter, (dir) => {
    reporter.record({
      job: `LoRA steps 1 x ${T}, Llama-3.2-1B shapes`,
      weights: "bf16, offload auto",
      ...job([dir, "bf16", "auto", 1, T, steps]),
    });
  });
}
