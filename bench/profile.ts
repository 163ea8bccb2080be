// Per-kernel time profile of one training step of the benchmark Llama (hidden 512, 8 layers,
// vocab 32000, batch 4 x seq 256; --quick: 2 layers, batch 2 x 128), or with --demo of the demo's
// model (demo/model: hidden 192, 4 layers, vocab 348) on a demo-sized batch (16 rows x 42 tokens),
// wasm kernels (or --kernels NAME) on all threads (or --threads N).
// Every Kernels method is wrapped with a wall-clock timer; matmuls are keyed by their shapes and
// flags, so the table shows where a step goes and how far each GEMM shape is from the square rate.
// A shape's GFLOP/s counts the full product: causal attention products, which skip about half of
// it (MatmulOptions.causal), show a nominal rate (bench/matmul-meter.ts counts what they compute).
//
// Usage: npm run profile -- [plain|lora|full|estimate|generate] [--quick] [--demo] [--json]
//                             [--kernels wasm|native|ref] [--threads N]
//   plain     forward + backward to inputs_embeds, no weight gradients (bench train-step)
//   lora      one LoRA training step, r = 8 on all linear layers (bench lora-train)
//   full      one full fine-tuning step (every weight trained)
//   estimate  one LoRA-GA gradient-estimation batch, all linear targets (bench lora-ga-init)
//   generate  greedy generation with the KV cache: --demo 50 prompts of 27 tokens, 24 new tokens
//             (a batch of the demo's held-out scoring); else the batch's rows as prompts, 16 new
// "outside kernels" is the step time not spent inside any kernel call (JS glue, buffer fills);
// the (Tensor.fill) row shows the zeroing part of it.

import { fileURLToPath } from "node:url";
import type { LlamaFamilyConfig } from "../src/io/hf-config.js";
import { createKernels } from "../src/kernels/index.js";
import type { Kernels, KernelsName, MatmulOptions } from "../src/kernels/kernels.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import { type Batch, type CausalLM, loadModel } from "../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../src/models/random.js";
import { LoraConfig } from "../src/peft/config.js";
import { estimateGradient } from "../src/peft/estimate.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import { Tensor } from "../src/tensor/tensor.js";
import { FixedBatches } from "../src/train/data-order.js";
import { generate } from "../src/train/generate.js";
import { fullFineTuning } from "../src/train/trainable.js";
import { train } from "../src/train/trainer.js";
import { Rng } from "../src/util/random.js";

const ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

interface Entry {
  ms: number;
  calls: number;
  /** multiply-adds x 2, for matmuls */
  flops: number;
}

/** Wraps every method of `kernels` with a timer; returns the table and a restorer. */
function instrument(kernels: Kernels): { table: Map<string, Entry>; restore: () => void } {
  const table = new Map<string, Entry>();
  const target = kernels as unknown as Record<string, unknown>;
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  for (const key of Object.keys(target)) {
    const fn = target[key];
    if (typeof fn !== "function" || key === "dispose") continue;
    const original = fn as (...args: unknown[]) => unknown;
    originals.set(key, original);
    target[key] = (...args: unknown[]) => {
      const t0 = performance.now();
      const result = original.apply(kernels, args);
      const ms = performance.now() - t0;
      const { name, flops } = key === "matmul" ? describeMatmul(args) : { name: key, flops: 0 };
      const e = table.get(name) ?? { ms: 0, calls: 0, flops: 0 };
      e.ms += ms;
      e.calls += 1;
      e.flops += flops;
      table.set(name, e);
      return result;
    };
  }
  // buffer zeroing outside the kernels (Tensor.fill) gets its own row
  const proto = Tensor.prototype as unknown as { fill: (value: number) => Tensor };
  const fill = proto.fill;
  proto.fill = function (this: Tensor, value: number) {
    const t0 = performance.now();
    const result = fill.call(this, value);
    const e = table.get("(Tensor.fill)") ?? { ms: 0, calls: 0, flops: 0 };
    e.ms += performance.now() - t0;
    e.calls += 1;
    table.set("(Tensor.fill)", e);
    return result;
  };
  return {
    table,
    restore: () => {
      for (const [key, fn] of originals) target[key] = fn;
      proto.fill = fill;
    },
  };
}

/** "matmul (M x K) x (K x N) [batch b] flags" and its flop count. */
function describeMatmul(args: unknown[]): { name: string; flops: number } {
  const [out, a] = args as [Tensor, Tensor];
  const o = (args[3] ?? {}) as MatmulOptions;
  const os = out.shape;
  const M = os[os.length - 2];
  const N = os[os.length - 1];
  const as = a.shape;
  const K = o.transA === true ? as[as.length - 2] : as[as.length - 1];
  const batch = os.slice(0, -2).reduce((p, x) => p * x, 1);
  const flags = [
    o.transA === true ? "TA" : "",
    o.transB === true ? "TB" : "",
    o.accumulate === true ? "+=" : "",
  ].join("");
  const name = `matmul ${batch > 1 ? `${batch}x ` : ""}${M}x${K}x${N}${flags === "" ? "" : ` ${flags}`}`;
  return { name, flops: 2 * batch * M * N * K };
}

const MODES = ["plain", "lora", "full", "estimate", "generate"];
const DEMO_MODEL = fileURLToPath(new URL("../../demo/model", import.meta.url)); // from build/bench

/** The value after `flag` in args, if any. */
function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

/** The demo model, or the synthetic benchmark Llama with random weights. */
async function profileModel(kernels: Kernels, demo: boolean, quick: boolean): Promise<CausalLM> {
  if (demo) return loadModel(DEMO_MODEL, { kernels });
  const config = syntheticLlamaConfig({
    layers: quick ? 2 : 8,
    hidden: 512,
    intermediate: 1376,
    heads: 8,
    vocab: 32000,
  });
  return createLlama(config, randomCheckpoint(llamaParamSpecs(config), 1), kernels, "(random)");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const values = new Set(["--kernels", "--threads"].map((f) => flagValue(args, f)));
  const mode = args.find((a) => !a.startsWith("--") && !values.has(a)) ?? "plain";
  if (!MODES.includes(mode))
    throw new Error(`profile: unknown mode "${mode}" (${MODES.join(" | ")})`);
  const quick = args.includes("--quick");
  const json = args.includes("--json");
  const demo = args.includes("--demo");
  const kernelsName = (flagValue(args, "--kernels") ?? "wasm") as KernelsName;
  const threadsFlag = flagValue(args, "--threads");
  const [B, T] = demo ? [16, 42] : quick ? [2, 128] : [4, 256];
  const heap = new Heap();
  const threads = threadsFlag === undefined ? await cpuCount() : Number(threadsFlag);
  const kernels = await createKernels(kernelsName, { heap, threads });
  try {
    const model = await profileModel(kernels, demo, quick);
    const { vocab_size: vocab, hidden_size: hidden } = model.config as LlamaFamilyConfig; // both Llamas
    const rng = new Rng(2);
    const inputIds = Int32Array.from({ length: B * T }, () => rng.below(vocab));
    const batch: Batch = { batchSize: B, seqLen: T, inputIds, labels: inputIds.slice() };
    let step: () => Promise<unknown>;
    if (mode === "plain") {
      // as bench train-step: the gradient down to inputs_embeds, like train_step_torch.py's
      const inputsEmbedsGrad = heap.tensor([B, T, hidden]); // (B, T, C)
      step = async () => model.lossAndGrads(batch, { inputsEmbedsGrad });
    } else if (mode === "lora" || mode === "full") {
      const trained =
        mode === "full"
          ? fullFineTuning(model)
          : getPeftModel(
              model,
              new LoraConfig({ r: 8, lora_alpha: 16, target_modules: ALL_LINEAR }),
              {
                seed: 0,
              },
            );
      const data = new FixedBatches([batch]);
      step = () => train(trained, data, { steps: 1, lr: 1e-4 });
    } else if (mode === "estimate") {
      const targets = model
        .linears()
        .map((l) => l.path)
        .filter((p) => !p.endsWith("lm_head"));
      step = () => estimateGradient(model, [batch], { targets });
    } else {
      const [rows, promptLength, maxNewTokens] = demo ? [50, 27, 24] : [B, T, 16];
      const prompts = Array.from({ length: rows }, () =>
        Array.from({ length: promptLength }, () => rng.below(vocab)),
      );
      step = () => generate(model, prompts, { maxNewTokens });
    }
    await step(); // warm-up: plans the activations
    const reps = demo && mode !== "generate" ? 10 : 2;
    const { table, restore } = instrument(kernels);
    const t0 = performance.now();
    for (let r = 0; r < reps; r++) await step();
    const stepMs = (performance.now() - t0) / reps;
    restore();
    const rows = [...table].map(([name, e]) => ({
      name,
      ms: e.ms / reps,
      calls: e.calls / reps,
      flops: e.flops / reps,
    }));
    rows.sort((x, y) => y.ms - x.ms);
    // Tensor.fill runs outside the kernels (counted in "outside")
    const inKernels = rows.filter((r) => r.name !== "(Tensor.fill)").reduce((s, r) => s + r.ms, 0);
    const gemmMs = rows.filter((r) => r.flops > 0).reduce((s, r) => s + r.ms, 0);
    console.log(
      `profile ${mode}: step ${stepMs.toFixed(1)} ms; matmul ${gemmMs.toFixed(1)} ms; other kernels ${(inKernels - gemmMs).toFixed(1)} ms; outside kernels ${(stepMs - inKernels).toFixed(1)} ms (${threads} threads)`,
    );
    for (const r of rows) {
      const rate = r.flops > 0 ? `${(r.flops / r.ms / 1e6).toFixed(1).padStart(6)} GFLOP/s` : "";
      console.log(
        `${r.ms.toFixed(1).padStart(8)} ms ${String(r.calls).padStart(5)} calls  ${r.name.padEnd(40)} ${rate}`,
      );
      if (json)
        console.log(
          JSON.stringify({
            profile: mode,
            op: r.name,
            ms: r.ms,
            calls: r.calls,
            gflops: r.flops > 0 ? r.flops / r.ms / 1e6 : null,
          }),
        );
    }
    if (json)
      console.log(
        JSON.stringify({
          profile: mode,
          step_ms: stepMs,
          matmul_ms: gemmMs,
          other_kernels_ms: inKernels - gemmMs,
          outside_ms: stepMs - inKernels,
        }),
      );
    model.dispose();
  } finally {
    await kernels.dispose();
  }
}

await main();
