// The `scale` suite (issue 15): the whole LoRA-GA job on random checkpoints with real models'
// shapes, loraga against PyTorch + PEFT in the same run. Per model (SCALE_MODELS) and frozen-weight
// base (f32; bf16; nf4 = bf16 for the estimation, then quantized to NF4 for training, QLoRA style):
//   1. a BF16 checkpoint of random weights with the model's shapes (writeFastCheckpoint) and a
//      JSONL of random token rows, written into a temporary folder;
//   2. loraga: `loraga train --method lora-ga` as a child process: bounded estimation
//      (--max-grad-memory 512M, --ga-batches N of B x T, all-linear), LoRA-GA init (r 8, alpha 16),
//      then S AdamW steps at B x T, --gradient-checkpointing, the auto engine;
//   3. PyTorch + PEFT (bench/scale_torch.py, skipped without python3 + torch): the same job on CPU
//      (preprocess_loraga over the same N batches, get_peft_model, S AdamW steps, gradient
//      checkpointing), f32 weights for an f32 base and bf16 otherwise (PyTorch has no NF4 on CPU:
//      the nf4 base has no PyTorch row).
// Both children run under `/usr/bin/time -v`, whose "Maximum resident set size" (getrusage's
// ru_maxrss of the child) is the peak RSS of both sides, measured the same way. Reported per
// side: the child's CPU seconds (user + system, all threads: less sensitive than wall time to
// other processes on a shared machine), peak RSS, loraga's peak engine heap (run.json
// peak_memory), estimation and init seconds, seconds per training step (mean of the steps after
// the first, which plans the buffers) and tokens/s. One JSON line (record) per side and job.
// Options (after `npm run bench -- scale`): --scale-models=smollm2-135m,qwen2.5-0.5b,llama-3.2-1b
// (the default; llama-3.2-3b when named)
// --scale-bases=f32,bf16,nf4 (default: each model's own) --scale-ga-batches=8 --scale-steps=20
// --scale-batch-size=4 --scale-seq=1024 --scale-sides=loraga,torch (one of them: that side
// only) --scale-target=all-linear (loraga's --target; another value is for loraga-only runs,
// such as Llama-3.2-3B, whose all-linear f32 gradients take 11.3 GB of host memory).
// `--quick`: SmolLM2-135M only, 2 x 2 x 128, 3 steps.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LlamaFamilyConfig } from "../src/io/hf-config.js";
import { parseModelConfig } from "../src/io/hf-config.js";
import { type TensorToWrite, writeSafetensors } from "../src/io/safetensors.js";
import { llamaParamSpecs } from "../src/models/llama.js";
import { f32ToBf16 } from "../src/tensor/dtype.js";
import { Rng } from "../src/util/random.js";
import { LLAMA32_1B, SMOLLM2_135M } from "./offload.js";
import { QWEN25_05B } from "./real-size.js";
import type { Reporter } from "./report.js";

type Base = "f32" | "bf16" | "nf4";

/** Llama-3.2-3B's config.json (the fields that shape the model): 6.4 GB of bf16 weights, past the
 * 4 GiB heap, so they stay off the heap (`--offload-frozen auto`). */
const LLAMA32_3B = {
  ...LLAMA32_1B,
  hidden_size: 3072,
  intermediate_size: 8192,
  num_hidden_layers: 28,
  num_attention_heads: 24,
  num_key_value_heads: 8,
  head_dim: 128,
};

const MODELS: { [name: string]: { config: Record<string, unknown>; bases: Base[] } } = {
  "smollm2-135m": { config: SMOLLM2_135M, bases: ["f32"] },
  "qwen2.5-0.5b": { config: QWEN25_05B, bases: ["f32"] },
  "llama-3.2-1b": { config: LLAMA32_1B, bases: ["bf16", "nf4"] },
  "llama-3.2-3b": { config: LLAMA32_3B, bases: ["bf16", "nf4"] },
};

/** The models of issue 15's done-when, the default; llama-3.2-3b runs when named. */
const ISSUE_MODELS = ["smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b"];

interface Job {
  /** --target of the loraga side (PyTorch's side targets every linear: the issue's job). */
  target: string;
  gaBatches: number;
  steps: number;
  batchSize: number;
  seq: number;
}

/** The value of `--scale-<name>=value` on the command line, if given. */
function flag(name: string): string | undefined {
  const prefix = `--scale-${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

function intFlag(name: string, fallback: number): number {
  const v = flag(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`--scale-${name}: expected a positive integer, got ${v}`);
  return n;
}

/**
 * config.json and a BF16 model.safetensors of random weights for a llama-family config: every
 * value is drawn from a table of 65536 N(0, 0.02^2) samples (rounded to bf16) by 16 random bits,
 * norm weights are 1. Per element that is one table lookup, against the ~0.5 µs of a normal draw
 * and rounding (bench/real-size.ts' writer, 10 minutes at Llama-3.2-1B's 1.2 billion values).
 */
async function writeFastCheckpoint(
  dir: string,
  configJson: Record<string, unknown>,
): Promise<void> {
  const config = parseModelConfig(configJson) as LlamaFamilyConfig;
  const normals = new Rng(1);
  const table = Uint16Array.from({ length: 65536 }, () => f32ToBf16(0.02 * normals.normal()));
  const one = f32ToBf16(1);
  let state = 0x9e3779b9; // xorshift32
  const tensors: TensorToWrite[] = [];
  for (const spec of llamaParamSpecs(config)) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Uint16Array(size);
    if (/norm\.weight$/.test(spec.name)) data.fill(one);
    else {
      for (let i = 0; i < size; i += 2) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        data[i] = table[state & 0xffff];
        if (i + 1 < size) data[i + 1] = table[state >>> 16];
      }
    }
    tensors.push({ name: spec.name, dtype: "BF16", shape: [...spec.shape], data });
  }
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(configJson, null, 2)}\n`);
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
}

/** `rows` JSONL rows {"input_ids": [...]} of `seq` random ids below `vocab`. */
function writeData(file: string, vocab: number, rows: number, seq: number): void {
  const rng = new Rng(7);
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    const ids = Array.from({ length: seq }, () => rng.below(vocab));
    lines.push(JSON.stringify({ input_ids: ids }));
  }
  writeFileSync(file, `${lines.join("\n")}\n`);
}

/**
 * Runs a command under /usr/bin/time -v; its stdout and its peak RSS in MiB. `stopped`: the
 * command was ended by a signal (a run cut short by hand); what it printed and its peak RSS up
 * to then are still returned.
 */
function timed(
  cmd: string,
  args: readonly string[],
): { stdout: string; rssMiB: number; cpuS: number; stopped: boolean } {
  const out = spawnSync("/usr/bin/time", ["-v", cmd, ...args], {
    encoding: "utf8",
    timeout: 6 * 3600 * 1000,
    maxBuffer: 64 * 2 ** 20,
  });
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(out.stderr ?? "");
  const stopped = /Command terminated by signal/.test(out.stderr ?? "");
  if ((out.status !== 0 && !stopped) || rss === null) {
    // the command's own last lines, before time's report ("\tCommand being timed: ...")
    const own = (out.stderr ?? "").split("\tCommand being timed")[0];
    const tail = own.trim().split("\n").slice(-12).join("\n");
    throw new Error(`${cmd} ${args.slice(0, 3).join(" ")} ...: exit ${out.status}\n${tail}`);
  }
  const seconds = (what: string) =>
    Number(new RegExp(`${what} time \\(seconds\\): ([\\d.]+)`).exec(out.stderr ?? "")?.[1] ?? 0);
  const cpuS = seconds("User") + seconds("System");
  return { stdout: out.stdout, rssMiB: Number(rss[1]) / 1024, cpuS, stopped };
}

/** Mean of the step times after the first (which also plans the buffers), from the elapsed_s log. */
function stepSeconds(elapsed: readonly number[]): number {
  const per = elapsed.map((e, i) => e - (i === 0 ? 0 : elapsed[i - 1]));
  const timedSteps = per.length > 1 ? per.slice(1) : per;
  return timedSteps.reduce((a, x) => a + x, 0) / timedSteps.length;
}

function loragaSide(
  modelDir: string,
  data: string,
  out: string,
  base: Base,
  job: Job,
): Record<string, number | string> {
  const here = dirname(fileURLToPath(import.meta.url));
  const cli = join(here, "..", "src", "cli", "main.js"); // build/bench -> build/src
  if (!existsSync(cli)) throw new Error(`${cli} not found (run the compiled bench)`);
  const args = [
    "--experimental-wasm-relaxed-simd",
    cli,
    "train",
    ...["--model", modelDir, "--data", data, "--out", out, "--method", "lora-ga"],
    ...["--r", "8", "--alpha", "16", "--target", job.target],
    ...["--ga-batches", String(job.gaBatches), "--max-grad-memory", "512M"],
    ...["--steps", String(job.steps), "--batch-size", String(job.batchSize)],
    ...["--max-length", String(job.seq), "--gradient-checkpointing", "--no-shuffle"],
    ...["--weight-dtype", base === "f32" ? "f32" : "bf16", "--offload-frozen", "auto"],
    ...(base === "nf4" ? ["--quantize", "nf4"] : []),
    "--quiet",
  ];
  const { rssMiB, cpuS } = timed(process.execPath, args);
  const run = JSON.parse(readFileSync(join(out, "run.json"), "utf8")) as Record<string, number>;
  const log = readFileSync(join(out, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, number | string>)
    .filter((r) => r.type === "train");
  const stepS = stepSeconds(log.map((r) => Number(r.elapsed_s)));
  return {
    side: "loraga",
    cpu_s: cpuS,
    peak_rss_mib: rssMiB,
    peak_heap_mib: run.peak_memory / 2 ** 20,
    estimate_s: run.estimate_seconds,
    init_s: run.svd_seconds,
    step_s: stepS,
    tokens_per_s: (job.batchSize * job.seq) / stepS,
    first_loss: Number(log[0]?.loss),
    last_loss: run.final_train_loss,
  };
}

function torchSide(
  modelDir: string,
  data: string,
  base: Base,
  job: Job,
): Record<string, number | string> | string {
  const probe = spawnSync("python3", ["-c", "import torch, peft, transformers"], {
    encoding: "utf8",
  });
  if (probe.status !== 0) return "python3 with torch, transformers and peft not found";
  const here = dirname(fileURLToPath(import.meta.url));
  const script = [
    join(here, "scale_torch.py"),
    join(here, "..", "..", "bench", "scale_torch.py"),
  ].find((p) => existsSync(p));
  if (script === undefined) return "scale_torch.py not found";
  const dtype = base === "f32" ? "f32" : "bf16";
  const { stdout, rssMiB, cpuS, stopped } = timed("python3", [
    script,
    modelDir,
    data,
    ...[job.gaBatches, job.steps, job.batchSize, job.seq].map(String),
    dtype,
  ]);
  const line = stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .at(-1);
  const r = (line === undefined ? {} : JSON.parse(line)) as Record<string, number | undefined> & {
    phase?: string;
  };
  const side = `PyTorch+PEFT (${dtype} weights, 2 threads)`;
  if (stopped || r.phase !== "trained") {
    // cut short: the peak RSS so far is a lower bound of the job's
    const reached = line === undefined ? "loading / estimating" : String(r.phase);
    return {
      side,
      stopped_after: reached,
      cpu_s: cpuS,
      peak_rss_mib_at_least: rssMiB,
      ...partial(r),
    };
  }
  const stepS = r.step_s as number;
  return {
    side,
    cpu_s: cpuS,
    peak_rss_mib: rssMiB,
    estimate_s: r.estimate_s as number,
    init_s: r.init_s as number,
    step_s: stepS,
    tokens_per_s: (job.batchSize * job.seq) / stepS,
    first_loss: r.first_loss as number,
    last_loss: r.last_loss as number,
  };
}

/** The timings a partial PyTorch line carries. */
function partial(r: Record<string, number | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  if (r.estimate_s !== undefined) out.estimate_s = r.estimate_s;
  if (r.init_s !== undefined) out.init_s = r.init_s;
  return out;
}

export async function scaleSuite(reporter: Reporter, options: { quick: boolean }): Promise<void> {
  const names = (flag("models") ?? (options.quick ? "smollm2-135m" : ISSUE_MODELS.join(",")))
    .split(",")
    .filter((n) => n !== "");
  for (const n of names)
    if (!(n in MODELS))
      throw new Error(`--scale-models: unknown ${n}; known: ${Object.keys(MODELS).join(", ")}`);
  const job: Job = {
    target: flag("target") ?? "all-linear",
    gaBatches: intFlag("ga-batches", options.quick ? 2 : 8),
    steps: intFlag("steps", options.quick ? 3 : 20),
    batchSize: intFlag("batch-size", options.quick ? 2 : 4),
    seq: intFlag("seq", options.quick ? 128 : 1024),
  };
  const bases = flag("bases")?.split(",") as Base[] | undefined;
  const sides = (flag("sides") ?? "loraga,torch").split(",");
  if (job.target !== "all-linear" && sides.includes("torch"))
    throw new Error(
      "--scale-target other than all-linear: add --scale-sides=loraga (PyTorch's side targets every linear)",
    );
  const root = mkdtempSync(join(tmpdir(), "loraga-scale-"));
  try {
    for (const name of names) {
      const { config, bases: own } = MODELS[name];
      const modelDir = join(root, name);
      mkdirSync(modelDir);
      const t0 = performance.now();
      await writeFastCheckpoint(modelDir, config);
      const data = join(root, `${name}.jsonl`);
      const rows = job.batchSize * Math.max(job.gaBatches, job.steps);
      writeData(data, config.vocab_size as number, rows, job.seq);
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      reporter.note(
        `${name}: random BF16 checkpoint and ${rows} rows of ${job.seq} ids written in ${s} s`,
      );
      const what = `LoRA-GA estimate ${job.gaBatches} x ${job.batchSize} x ${job.seq} (${job.target}) + init + ${job.steps} steps`;
      for (const base of bases ?? own) {
        const out = join(root, `${name}-${base}-run`);
        const common = { model: name, base, job: what };
        if (sides.includes("loraga"))
          reporter.record({ ...common, ...loragaSide(modelDir, data, out, base, job) });
        if (!sides.includes("torch") || base === "nf4") continue;
        const torch = torchSide(modelDir, data, base, job);
        if (typeof torch === "string") reporter.note(`  PyTorch/PEFT side skipped: ${torch}`);
        else reporter.record({ ...common, ...torch });
      }
      rmSync(modelDir, { recursive: true, force: true }); // GBs: one checkpoint at a time
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
