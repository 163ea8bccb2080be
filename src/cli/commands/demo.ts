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
import { DEMO_METHOD_NAMES, DEMO_METHODS, verdictOf, verdictText } from "../../demo/methods.js";
import { writeFileAtomic } from "../../io/atomic-write.js";
import { makeDirs } from "../../io/output-paths.js";
import { renderReport } from "../../report/html.js";
import { readRunDir } from "../../report/read-run.js";
import { compareRuns } from "../../report/stats.js";
import { renderTextTable } from "../../report/table.js";
import { addEngineOptions, intFlag, listFlag, numberFlag, openEngine } from "../common.js";
import { resolveOptions, UsageError } from "../config-file.js";
import { registerTrain } from "./train.js";

/** The package's root: dist/cli/commands (or src/cli/commands) -> three levels up. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const DEFAULT_DEMO_MODEL = join(PACKAGE_ROOT, "demo", "model");
const MARKER = ".loraga-demo";

/** Sizes of a full demo and of --quick (a smoke test: seconds, not a meaningful comparison). */
const FULL = { steps: 300, batchSize: 16, trainRows: 4800, testRows: 100, gaBatches: 8 };
const QUICK = { steps: 4, batchSize: 4, trainRows: 64, testRows: 8, gaBatches: 2 };

export function registerDemo(program: Command): void {
  const command = program
    .command("demo")
    .description(
      "compare LoRA, LoRA-GA, PiSSA and full fine-tuning on the embedded model and task; writes report.html",
    )
    .option(
      "--out <dir>",
      "output directory (data, one run directory per method, report.html)",
      "runs/demo",
    )
    .option("--model <dir>", "model to fine-tune (default: the embedded demo model)")
    .option(
      "--methods <list>",
      `comma-separated methods (${DEMO_METHOD_NAMES.join(", ")})`,
      DEMO_METHOD_NAMES.join(","),
    )
    .option(
      "--steps <n>",
      `optimizer steps per method (default ${FULL.steps}; --quick: ${QUICK.steps})`,
      intFlag("--steps"),
    )
    .option(
      "--batch-size <n>",
      `rows per step (default ${FULL.batchSize}; --quick: ${QUICK.batchSize})`,
      intFlag("--batch-size"),
    )
    .option("--r <n>", "LoRA rank", intFlag("--r"), 8)
    .option("--alpha <x>", "lora_alpha", intFlag("--alpha"), 16)
    .option(
      "--lr <x>",
      "one learning rate for every method (the paper's protocol); default: per method family",
      numberFlag("--lr"),
    )
    .option("--seed <n>", "seed for the task, inits and data order", intFlag("--seed", 0), 0)
    .option(
      "--test-rows <n>",
      `held-out problems (default ${FULL.testRows}; --quick: ${QUICK.testRows})`,
      intFlag("--test-rows"),
    )
    .option(
      "--max-new-tokens <n>",
      "generation length for exact match",
      intFlag("--max-new-tokens"),
      40,
    )
    .option("--quick", "a few steps on a few rows: checks the pipeline in seconds", false);
  addEngineOptions(command);
  command.addHelpText(
    "after",
    "\nExamples:\n  loraga demo                      # what `npm start` runs: about 6 minutes on 2 cores\n" +
      "  loraga demo --quick --out /tmp/demo\n  loraga demo --methods lora,lora-ga --steps 100\n" +
      "  loraga demo --lr 5e-4 --out runs/demo-same-lr   # every method at one learning rate, as in the paper\n",
  );
  command.action(async () => {
    await runDemo(resolveOptions(command));
  });
}

async function runDemo(options: Record<string, unknown>): Promise<void> {
  const quick = options.quick === true;
  const size = quick ? QUICK : FULL;
  const steps = (options.steps as number | undefined) ?? size.steps;
  const batchSize = (options.batchSize as number | undefined) ?? size.batchSize;
  const testRowCount = (options.testRows as number | undefined) ?? size.testRows;
  const trainRowCount = Math.max(size.trainRows, steps * batchSize);
  const seed = options.seed as number;
  const quiet = options.quiet === true;
  const say = (s: string) => {
    if (!quiet) process.stderr.write(`${s}\n`);
  };
  const names = listFlag(options.methods as string);
  for (const n of names) {
    if (!DEMO_METHOD_NAMES.includes(n))
      throw new UsageError(
        `--methods: unknown method "${n}" (methods: ${DEMO_METHOD_NAMES.join(", ")})`,
      );
  }
  if (names.length === 0 || new Set(names).size !== names.length) {
    throw new UsageError(`--methods: give distinct methods from ${DEMO_METHOD_NAMES.join(", ")}`);
  }
  const sameLr = options.lr as number | undefined;
  if (sameLr !== undefined && !(sameLr > 0))
    throw new UsageError(`--lr must be > 0, got ${sameLr}`);
  const methods = DEMO_METHODS.filter((m) => names.includes(m.method)).map((m) =>
    sameLr === undefined ? m : { ...m, lr: sameLr, lrReason: "one rate for every method (--lr)" },
  );
  const modelDir = (options.model as string | undefined) ?? DEFAULT_DEMO_MODEL;
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    if (!existsSync(join(modelDir, f)))
      throw new UsageError(
        `--model ${modelDir}: no ${f} there (the demo needs a model with its tokenizer)`,
      );
  }
  const out = options.out as string;
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
    `demo: model ${modelDir}; ${steps} steps of ${batchSize} rows per method, r ${options.r as number}, alpha ${options.alpha as number}, seed ${seed}`,
  );

  const engineFlags = [
    "--kernels",
    options.kernels as string,
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
        maxNewTokens: options.maxNewTokens as number,
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
  const html = renderReport(runs, {
    title,
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  });
  const reportFile = join(out, "report.html");
  await writeFileAtomic(reportFile, html);
  const comparison = compareRuns(runs);
  const verdict = verdictOf(comparison);
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
  registerTrain(program);
  await program.parseAsync(args, { from: "user" });
}

/** Creates OUT, or clears the outputs of an earlier demo there; refuses any other non-empty directory. */
async function prepareOut(out: string, methods: readonly string[]): Promise<void> {
  if (existsSync(out) && readdirSync(out).length > 0) {
    if (!existsSync(join(out, MARKER))) {
      throw new UsageError(
        `--out ${out}: exists and is not an earlier demo's output; choose a new directory`,
      );
    }
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
