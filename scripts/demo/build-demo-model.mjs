#!/usr/bin/env node
// Builds the demo's embedded default model, demo/model/: a small Llama pretrained from scratch
// by the project's own trainer on a generated English + arithmetic corpus. No Python, no network.
//
// Usage (repo root, after `npm run build`):
//   node --experimental-wasm-relaxed-simd scripts/demo/build-demo-model.mjs [--out demo/model]
//        [--work runs/demo-pretrain] [--steps 1400] [--seed 1] [--kernels native]
//        [--corpus 48000] [--batch-size 32] [--lr 0.003] [--hidden 192] [--layers 4] [--heads 4]
//        [--mlp 512]
// What it does, deterministically from the seed:
//   1. the pretraining corpus (src/demo/corpus.ts): WORK/corpus-train.jsonl, WORK/corpus-eval.jsonl,
//      rows {"text": ...}; English sentences, small stories with numbers told with their
//      computation, arithmetic facts, quizzes — not the downstream word-problem format
//   2. a word-level tokenizer (src/demo/word-tokenizer.ts; words whole, digits one by one) whose
//      vocabulary is every word of the corpus and of the demo task's rows: tokenizer.json,
//      tokenizer_config.json
//   3. config.json of a small Llama and seeded random weights N(0, 0.02^2) (norms 1), as
//      transformers' LlamaPreTrainedModel initialises (initializer_range 0.02)
//   4. pretraining with `loraga train --method full` (AdamW, cosine schedule with warmup)
//   5. OUT/: the pretrained model.safetensors (F32), config.json, tokenizer files, and README.md
//      recording the command, the sizes and the final losses.
// The result is committed. Tokenizer, corpus and initial weights are bit-identical on every rerun;
// the pretrained weights agree up to the float rounding of the kernels (thread count, CPU).

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = join(root, "dist");
if (!existsSync(join(dist, "demo", "corpus.js"))) {
  process.stderr.write("build-demo-model: dist/ is missing; run `npm run build` first\n");
  process.exit(2);
}
const { wordTokenizerJson, wordTokenizerConfig } = await import(
  join(dist, "demo", "word-tokenizer.js")
);
const { makeCorpus } = await import(join(dist, "demo", "corpus.js"));
const { makeArithSplits, toJsonl } = await import(join(dist, "demo", "arith-task.js"));
const { llamaParamSpecs } = await import(join(dist, "models", "llama.js"));
const { parseModelConfig } = await import(join(dist, "io", "hf-config.js"));
const { writeSafetensors } = await import(join(dist, "io", "safetensors.js"));
const { Rng } = await import(join(dist, "util", "random.js"));

/** The demo model's architecture (a Llama as transformers' LlamaConfig names it). */
function demoConfig(opts, vocabSize) {
  return {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: vocabSize,
    hidden_size: opts.hidden,
    intermediate_size: opts.mlp,
    num_hidden_layers: opts.layers,
    num_attention_heads: opts.heads,
    num_key_value_heads: opts.heads,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: "silu",
    tie_word_embeddings: false,
    initializer_range: 0.02,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    torch_dtype: "float32",
  };
}

/** Rows of `loraga demo`'s task splits (src/cli/commands/demo.ts: training; held-out + validation). */
const TASK_ROWS = { train: 4800, heldOut: 700 };

function parseArgs(argv) {
  const opts = {
    out: "demo/model",
    work: "runs/demo-pretrain",
    steps: 1400,
    seed: 1,
    kernels: "native",
    corpus: 48000,
    batchSize: 32,
    lr: 3e-3,
    hidden: 192,
    layers: 4,
    heads: 4,
    mlp: 512,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === "--out" || a === "--work" || a === "--kernels") opts[a.slice(2)] = v;
    else if (
      a === "--steps" ||
      a === "--seed" ||
      a === "--corpus" ||
      a === "--batch-size" ||
      a === "--lr" ||
      a === "--hidden" ||
      a === "--layers" ||
      a === "--heads" ||
      a === "--mlp"
    ) {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${a} needs a number >= 0, got ${v}`);
      opts[a === "--batch-size" ? "batchSize" : a.slice(2)] = n;
    } else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

async function writeRandomModel(dir, seed, config, tokenizer) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(join(dir, "tokenizer.json"), `${JSON.stringify(tokenizer, null, 2)}\n`);
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    `${JSON.stringify(wordTokenizerConfig(), null, 2)}\n`,
  );
  const rng = new Rng(seed);
  const tensors = llamaParamSpecs(parseModelConfig(config)).map((spec) => {
    const data = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
    if (/norm\.weight$/.test(spec.name)) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = config.initializer_range * rng.normal();
    return { name: spec.name, dtype: "F32", shape: [...spec.shape], data };
  });
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const work = resolve(opts.work);
  const out = resolve(opts.out);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const evalRows = 128;
  const texts = makeCorpus(opts.corpus + evalRows, opts.seed);
  // the vocabulary: every word of the corpus and of the demo's task (its generator seed 1, the
  // rows `loraga demo` makes), so that no demo text falls back to characters
  const task = makeArithSplits(TASK_ROWS.train, TASK_ROWS.heldOut, 1);
  const taskTexts = [...task.train, ...task.test].map((r) => r.prompt + r.completion);
  const tokenizer = wordTokenizerJson([...texts, ...taskTexts]);
  const config = demoConfig(opts, Object.keys(tokenizer.model.vocab).length);
  const initDir = join(work, "init");
  await writeRandomModel(initDir, opts.seed, config, tokenizer);
  writeFileSync(
    join(work, "corpus-train.jsonl"),
    toJsonl(texts.slice(0, opts.corpus).map((text) => ({ text }))),
  );
  writeFileSync(
    join(work, "corpus-eval.jsonl"),
    toJsonl(texts.slice(opts.corpus).map((text) => ({ text }))),
  );
  const chars = texts.reduce((n, t) => n + t.length, 0);
  process.stderr.write(`corpus: ${texts.length} texts, ${chars} characters\n`);
  const run = join(work, "pretrain");
  const args = [
    "--experimental-wasm-relaxed-simd",
    join(dist, "cli", "main.js"),
    "train",
    "--model",
    initDir,
    "--data",
    join(work, "corpus-train.jsonl"),
    "--eval-data",
    join(work, "corpus-eval.jsonl"),
    "--method",
    "full",
    "--steps",
    String(opts.steps),
    "--batch-size",
    String(opts.batchSize),
    "--max-length",
    "256",
    "--lr",
    String(opts.lr),
    "--schedule",
    "cosine",
    "--warmup",
    String(Math.round(opts.steps * 0.05)),
    "--weight-decay",
    "0.1",
    "--betas",
    "0.9,0.95",
    "--clip",
    "1",
    "--seed",
    String(opts.seed),
    "--train-on-prompt",
    "--eval-every",
    String(Math.max(1, Math.round(opts.steps / 6))),
    "--kernels",
    opts.kernels,
    "--name",
    "pretrain",
    "--out",
    run,
  ];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`pretraining failed (exit ${r.status})`);
  const seconds = (performance.now() - t0) / 1000;
  const summary = JSON.parse(readFileSync(join(run, "run.json"), "utf8"));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    cpSync(join(run, "model", f), join(out, f));
  const evalLoss = summary.final_metrics.find((m) => m.name === "eval_loss")?.value;
  const command =
    `node --experimental-wasm-relaxed-simd scripts/demo/build-demo-model.mjs ${process.argv.slice(2).join(" ")}`.trim();
  writeFileSync(
    join(out, "README.md"),
    readme({ opts, config, command, summary, evalLoss, seconds, texts: opts.corpus, chars }),
  );
  process.stderr.write(
    `wrote ${out} (pretraining ${seconds.toFixed(0)} s, final train loss ${summary.final_train_loss.toFixed(4)}, eval loss ${evalLoss?.toFixed(4)})\n`,
  );
}

function readme({ opts, config, command, summary, evalLoss, seconds, texts, chars }) {
  const c = config;
  const params = llamaParamSpecs(parseModelConfig(c)).reduce(
    (n, s) => n + s.shape.reduce((a, b) => a * b, 1),
    0,
  );
  return `# loraga demo model

A small Llama (${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.num_attention_heads} heads, MLP ${c.intermediate_size}, vocabulary ${c.vocab_size} tokens, ${params.toLocaleString("en-US")} parameters, F32)
pretrained from scratch by \`loraga train --method full\` on a generated corpus, for the \`loraga demo\`
(\`npm start\`). Made by:

    npm run build
    ${command}

- Tokenizer: word level (src/demo/word-tokenizer.ts): <pad>, <s>, </s>, the printable ASCII characters and newline, each non-letter character with a leading space, " ####", and every word (with and without its leading space) of the corpus and of the demo task's rows; digits are single tokens.
- Corpus (src/demo/corpus.ts, seed ${opts.seed}): ${texts.toLocaleString("en-US")} training texts (${chars.toLocaleString("en-US")} characters incl. 128 held-out texts) of short English sentences, small stories with numbers told with their computation ("So 9 * 2 = 18, and 5 + 18 = 23 stickers."), lists and two-step chains of arithmetic facts (+, -, *) in the task's number ranges and quiz lines. Not the demo task's word-problem format.
- Initialisation: N(0, 0.02^2) weights, norms 1 (seeded; scripts/demo/build-demo-model.mjs).
- Pretraining: ${summary.steps} steps of batch ${opts.batchSize} texts, AdamW (lr ${opts.lr}, betas 0.9/0.95, weight decay 0.1), cosine schedule with 5% warmup, gradient clipping 1, ${opts.kernels} kernels; ${Math.round(seconds)} s on this machine.
- Final training loss ${summary.final_train_loss.toFixed(4)}; held-out corpus loss ${evalLoss === undefined ? "-" : evalLoss.toFixed(4)} (nats per token).
`;
}

main().catch((err) => {
  process.stderr.write(`build-demo-model: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
