// `loraga demo` (what `npm start` runs): the one-command comparison on the embedded default model.
// No network. It
//   1. generates the downstream task (src/demo/arith-task.ts: GSM8K-style arithmetic word problems,
//      seeded) into OUT/data/train.jsonl and OUT/data/test.jsonl (held out);
//   2. fine-tunes the committed demo model (demo/model/, made by scripts/demo/build-demo-model.mjs)
//      with each method through the `loraga train` command itself (same steps, batch size, seed,
//      rank, alpha, schedule, data order; learning rate per method family, src/demo/methods.ts),
//      one run directory each: OUT/<method>/;
//   3. scores held-out exact match by greedy generation (src/demo/evaluate.ts) into each run.json;
//   4. writes OUT/report.html (src/report) and prints the comparison table and the verdict on
//      "LoRA-GA reaches LoRA's final loss in at most half the steps" to stdout.
// Progress goes to stderr. OUT is created; an OUT written by an earlier demo (it holds the marker
// file .loraga-demo) is replaced; any other non-empty OUT is refused.

import { existsSync, readdirSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { makeArithSplits, toJsonl } from "../../demo/arith-task.js";
import { evaluateHeldOut, recordMetrics } from "../../demo/evaluate.js";
import {
  DEMO_METHOD_NAMES,
  DEMO_METHODS,
  type DemoMethod,
  verdictOf,
  verdictText,
} from "../../demo/methods.js";
import { writeFileAtomic } from "../../io/atomic-write.js";
import { makeDirs } from "../../io/output-paths.js";
import { renderReport } from "../../report/html.js";
import { readRunDir } from "../../report/read-run.js";
import { compareRuns } from "../../report/stats.js";
import { renderTextTable } from "../../report/table.js";
import { commandOf } from "../command.js";
import { UsageError } from "../errors.js";
import { ENGINE_FLAGS, openEngine } from "../options/engine.js";
import { checkOutputDir } from "../options/output.js";
import {
  intFlag,
  listFlag,
  numberFlag,
  type Parsed,
  splitList,
  stringFlag,
  switchFlag,
  withDefault,
} from "../options/schema.js";
import { registerTrain } from "./train.js";

/** The package's root: dist/cli/commands (or src/cli/commands) -> three levels up. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const DEFAULT_DEMO_MODEL = join(PACKAGE_ROOT, "demo", "model");
const MARKER = ".loraga-demo";

/** Sizes of a full demo and of --quick (a smoke test: seconds, not a meaningful comparison). */
const FULL = { steps: 300, batchSize: 16, trainRows: 4800, testRows: 100, gaBatches: 8 };
const QUICK = { steps: 4, batchSize: 4, trainRows: 64, testRows: 8, gaBatches: 2 };

const SCHEMA = {
  out: withDefault(
    stringFlag("--out <dir>", "output directory (data, one run directory per method, report.html)"),
    "runs/demo",
  ),
  model: stringFlag("--model <dir>", "model to fine-tune (default: the embedded demo model)"),
  methods: withDefault(
    listFlag("--methods <list>", `comma-separated methods (${DEMO_METHOD_NAMES.join(", ")})`),
    DEMO_METHOD_NAMES.join(","),
  ),
  steps: intFlag(
    "--steps <n>",
    `optimizer steps per method (default ${FULL.steps}; --quick: ${QUICK.steps})`,
  ),
  batchSize: intFlag(
    "--batch-size <n>",
    `rows per step (default ${FULL.batchSize}; --quick: ${QUICK.batchSize})`,
  ),
  r: withDefault(intFlag("--r <n>", "LoRA rank"), 8),
  alpha: withDefault(intFlag("--alpha <x>", "lora_alpha"), 16),
  lr: numberFlag(
    "--lr <x>",
    "one learning rate for every method (the paper's protocol); default: per method family",
    { min: 0, minOpen: true },
  ),
  seed: withDefault(intFlag("--seed <n>", "seed for the task, inits and data order", 0), 0),
  testRows: intFlag(
    "--test-rows <n>",
    `held-out problems (default ${FULL.testRows}; --quick: ${QUICK.testRows})`,
  ),
  maxNewTokens: withDefault(
    intFlag("--max-new-tokens <n>", "generation length for exact match"),
    40,
  ),
  quick: switchFlag("--quick", "a few steps on a few rows: checks the pipeline in seconds"),
  ...ENGINE_FLAGS,
};

type Options = Parsed<typeof SCHEMA>["options"];

interface Plan {
  readonly options: Options;
  readonly methods: readonly DemoMethod[];
  readonly modelDir: string;
}

function check({ options: o, name }: Parsed<typeof SCHEMA>): Plan {
  const names = splitList(o.methods);
  for (const n of names) {
    if (!DEMO_METHOD_NAMES.includes(n))
      throw new UsageError(
        `${name("methods")}: unknown method "${n}" (methods: ${DEMO_METHOD_NAMES.join(", ")})`,
      );
  }
  if (names.length === 0 || new Set(names).size !== names.length) {
    throw new UsageError(
      `${name("methods")}: give distinct methods from ${DEMO_METHOD_NAMES.join(", ")}`,
    );
  }
  const sameLr = o.lr;
  const methods = DEMO_METHODS.filter((m) => names.includes(m.method)).map((m) =>
    sameLr === undefined ? m : { ...m, lr: sameLr, lrReason: "one rate for every method (--lr)" },
  );
  const modelDir = o.model ?? DEFAULT_DEMO_MODEL;
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    if (!existsSync(join(modelDir, f)))
      throw new UsageError(
        `--model ${modelDir}: no ${f} there (the demo needs a model with its tokenizer)`,
      );
  }
  checkOutputDir(name("out"), o.out); // before reading it: --out may name a file
  if (existsSync(o.out) && readdirSync(o.out).length > 0 && !existsSync(join(o.out, MARKER))) {
    throw new UsageError(
      `${name("out")} ${o.out}: exists and is not an earlier demo's output; choose a new directory`,
    );
  }
  return { options: o, methods, modelDir };
}

async function runDemo({ options, methods, modelDir }: Plan): Promise<void> {
  const quick = options.quick;
  const size = quick ? QUICK : FULL;
  const steps = options.steps ?? size.steps;
  const batchSize = options.batchSize ?? size.batchSize;
  const testRowCount = options.testRows ?? size.testRows;
  const trainRowCount = Math.max(size.trainRows, steps * batchSize);
  const seed = options.seed;
  const quiet = options.quiet;
  const say = (s: string) => {
    if (!quiet) process.stderr.write(`${s}\n`);
  };
  const out = options.out;
  await prepareOut(
    out,
    methods.map((m) => m.method),
  );

  const t0 = performance.now();
  const { train, test } = makeArithSplits(trainRowCount, testRowCount, seed + 1);
  const dataDir = join(out, "data");
  await makeDirs(dataDir);
  const trainFile = join(dataDir, "train.jsonl");
  const testFile = join(dataDir, "test.jsonl");
  await writeFile(trainFile, toJsonl(train));
  await writeFile(testFile, toJsonl(test));
  say(
    `demo: ${train.length} training and ${test.length} held-out arithmetic word problems in ${dataDir}`,
  );
  say(
    `demo: model ${modelDir}; ${steps} steps of ${batchSize} rows per method, r ${options.r}, alpha ${options.alpha}, seed ${seed}`,
  );

  const engineFlags = [
    "--kernels",
    options.kernels,
    ...(options.threads === undefined ? [] : ["--threads", String(options.threads)]),
    ...(quiet ? ["-q"] : []),
  ];
  const evalEvery = Math.max(1, Math.round(steps / 4));
  for (const m of methods) {
    const runDir = join(out, m.method);
    const args = [
      "train",
      "--model",
      modelDir,
      "--data",
      trainFile,
      "--eval-data",
      testFile,
      "--method",
      m.method,
      "--r",
      String(options.r),
      "--alpha",
      String(options.alpha),
      "--lr",
      String(m.lr),
      "--schedule",
      "cosine",
      "--warmup",
      String(Math.round(steps * 0.03)),
      "--steps",
      String(steps),
      "--batch-size",
      String(batchSize),
      "--max-length",
      "256",
      "--ga-batches",
      String(size.gaBatches),
      "--eval-every",
      String(evalEvery),
      "--seed",
      String(seed),
      "--name",
      m.method,
      "--out",
      runDir,
      ...engineFlags,
    ];
    say(`\n== ${m.method} (lr ${m.lr}: ${m.lrReason})\n   loraga ${args.join(" ")}`);
    await runSubcommand(args);
    const engine = await openEngine(options);
    try {
      const result = await evaluateHeldOut(runDir, modelDir, test, {
        kernels: engine.kernels,
        batchSize: 25,
        maxNewTokens: options.maxNewTokens,
      });
      await recordMetrics(runDir, { exact_match: result.exactMatch });
      say(
        `   held-out exact match ${(100 * result.exactMatch).toFixed(1)}%; e.g. ${JSON.stringify(result.samples[0]?.generated ?? "")} for ${JSON.stringify(result.samples[0]?.reference ?? "")}`,
      );
    } finally {
      await engine.dispose();
    }
  }

  const runs = [];
  for (const m of methods) runs.push(await readRunDir(join(out, m.method)));
  const seconds = (performance.now() - t0) / 1000;
  const title = `loraga demo: ${methods.map((m) => m.method).join(" vs ")} on arithmetic word problems`;
  const comparison = compareRuns(runs);
  const verdict = verdictOf(comparison);
  const html = renderReport(runs, {
    title,
    logY: true,
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    summary: verdict === null ? [] : [verdictText(verdict).trim().replace(/\n/g, ". ")],
  });
  const reportFile = join(out, "report.html");
  await writeFileAtomic(reportFile, html);
  process.stdout.write(renderTextTable(comparison));
  if (verdict !== null) process.stdout.write(`\n${verdictText(verdict)}`);
  await writeFileAtomic(
    join(out, "summary.json"),
    `${JSON.stringify({ steps, batchSize, seed, seconds, methods, verdict }, null, 2)}\n`,
  );
  say(`\ndemo: wrote ${reportFile} (${seconds.toFixed(0)} s)`);
}

/** Runs a `loraga` subcommand in this process (same code path, defaults and checks as the CLI). */
async function runSubcommand(args: string[]): Promise<void> {
  const program = new Command("loraga").exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerTrain.register(program);
  await program.parseAsync(args, { from: "user" });
}

/** Creates OUT, or clears the outputs of an earlier demo there (check() refused any other). */
async function prepareOut(out: string, methods: readonly string[]): Promise<void> {
  if (existsSync(out) && readdirSync(out).length > 0) {
    // check() refused any non-empty OUT without the marker
    for (const name of [...DEMO_METHOD_NAMES, "data", "report.html", "summary.json"]) {
      await rm(join(out, name), { recursive: true, force: true });
    }
  }
  await makeDirs(out); // Node's recursive mkdir loops forever on /proc/foo
  await writeFile(
    join(out, MARKER),
    `written by loraga demo (${methods.join(", ")}); this directory is replaced by the next demo\n`,
  );
}

export const registerDemo = commandOf({
  name: "demo",
  description:
    "compare LoRA, LoRA-GA, PiSSA and full fine-tuning on the embedded model and task; writes report.html",
  schema: SCHEMA,
  helpAfter:
    "\nExamples:\n  loraga demo                      # what `npm start` runs: about 6 minutes on 2 cores\n" +
    "  loraga demo --quick --out /tmp/demo\n  loraga demo --methods lora,lora-ga --steps 100\n" +
    "  loraga demo --lr 5e-4 --out runs/demo-same-lr   # every method at one learning rate, as in the paper\n",
  check,
  run: runDemo,
});
