// `loraga demo` (what `npm start` runs): the one-command comparison on the embedded default model.
// No network. It
//   1. generates the downstream task (src/demo/arith-task.ts: GSM8K-style arithmetic word problems,
//      seeded) into OUT/data/: train.jsonl, test.jsonl (held out) and validation.jsonl (for the
//      learning-rate sweep; neither training nor held-out problems);
//   2. fine-tunes the committed demo model (demo/model/, made by scripts/demo/build-demo-model.mjs)
//      with each method and seed through the `loraga train` command itself (same steps, batch
//      size, rank, alpha, schedule), under the two protocols of src/demo/methods.ts (a run shared
//      by both, same method and rate, trains once), one run directory each: OUT/runs/<run>/;
//   3. scores held-out exact match by greedy generation (src/demo/evaluate.ts) into each run.json;
//   4. summarises mean and spread over seeds (src/demo/summary.ts), writes OUT/report.html
//      (src/demo/report.ts) and prints the tables and the conclusion to stdout.
// With --sweep it instead trains each method at every rate of the sweep grid on one seed, scores
// the validation loss, and writes OUT/tuned-rates.json (scripts/demo/sweep-lr.mjs commits it).
// Progress goes to stderr, one line per run. OUT is created; an OUT written by an earlier demo
// (it holds the marker file .loraga-demo) is replaced; any other non-empty OUT is refused.

import { existsSync, readdirSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { makeArithSplits, type TaskRow, toJsonl } from "../../demo/arith-task.js";
import { evaluateHeldOut, recordMetrics } from "../../demo/evaluate.js";
import {
  DEMO_METHOD_NAMES,
  parseTunedRates,
  protocolsOf,
  sweepRates,
  type TunedRates,
} from "../../demo/methods.js";
import { protocolText, renderDemoReport } from "../../demo/report.js";
import { conclusion, type SeedRun, summarise } from "../../demo/summary.js";
import { writeFileAtomic } from "../../io/atomic-write.js";
import { makeDirs } from "../../io/output-paths.js";
import { readRunDir } from "../../report/read-run.js";
import { formatLr } from "../../report/table.js";
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
const DEFAULT_TUNED_RATES = join(PACKAGE_ROOT, "demo", "tuned-rates.json");
const MARKER = ".loraga-demo";

/** Sizes of a full demo and of --quick (a smoke test: seconds, not a meaningful comparison). */
const FULL = {
  steps: 120,
  batchSize: 16,
  trainRows: 4800,
  testRows: 500,
  valRows: 200,
  gaBatches: 8,
  seeds: 3,
};
const QUICK = {
  steps: 4,
  batchSize: 4,
  trainRows: 64,
  testRows: 8,
  valRows: 8,
  gaBatches: 2,
  seeds: 1,
};

const SCHEMA = {
  out: withDefault(
    stringFlag("--out <dir>", "output directory (data, one directory per run, report.html)"),
    "runs/demo",
  ),
  model: stringFlag("--model <dir>", "model to fine-tune (default: the embedded demo model)"),
  methods: withDefault(
    listFlag("--methods <list>", `comma-separated methods (${DEMO_METHOD_NAMES.join(", ")})`),
    DEMO_METHOD_NAMES.join(","),
  ),
  steps: intFlag(
    "--steps <n>",
    `optimizer steps per run (default ${FULL.steps}; --quick: ${QUICK.steps})`,
  ),
  batchSize: intFlag(
    "--batch-size <n>",
    `rows per step (default ${FULL.batchSize}; --quick: ${QUICK.batchSize})`,
  ),
  seeds: intFlag(
    "--seeds <n>",
    `seeds per method (default ${FULL.seeds}; --quick: ${QUICK.seeds})`,
  ),
  r: withDefault(intFlag("--r <n>", "LoRA rank"), 8),
  alpha: withDefault(intFlag("--alpha <x>", "lora_alpha"), 16),
  lr: numberFlag("--lr <x>", "one learning rate for every method, instead of the two protocols", {
    min: 0,
    minOpen: true,
  }),
  rates: stringFlag(
    "--rates <file>",
    "tuned learning rates (default: the committed demo/tuned-rates.json)",
  ),
  sweep: switchFlag(
    "--sweep",
    "run the learning-rate sweep on the validation split instead; writes OUT/tuned-rates.json",
  ),
  seed: withDefault(intFlag("--seed <n>", "first seed (seeds are seed, seed+1, ...)", 0), 0),
  testRows: intFlag(
    "--test-rows <n>",
    `held-out problems (default ${FULL.testRows}; --quick: ${QUICK.testRows})`,
  ),
  maxNewTokens: withDefault(
    intFlag(
      "--max-new-tokens <n>",
      "generation length for exact match, in tokens (the embedded model's longest answer is 22)",
    ),
    24,
  ),
  quick: switchFlag("--quick", "a few steps on a few rows: checks the pipeline in seconds"),
  ...ENGINE_FLAGS,
};

type Options = Parsed<typeof SCHEMA>["options"];

interface Plan {
  readonly options: Options;
  readonly methods: readonly string[];
  readonly modelDir: string;
  readonly ratesFile: string;
}

function check({ options: o, name }: Parsed<typeof SCHEMA>): Plan {
  const methods = splitList(o.methods);
  for (const n of methods) {
    if (!DEMO_METHOD_NAMES.includes(n))
      throw new UsageError(
        `${name("methods")}: unknown method "${n}" (methods: ${DEMO_METHOD_NAMES.join(", ")})`,
      );
  }
  if (methods.length === 0 || new Set(methods).size !== methods.length) {
    throw new UsageError(
      `${name("methods")}: give distinct methods from ${DEMO_METHOD_NAMES.join(", ")}`,
    );
  }
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
  const ratesFile = o.rates ?? DEFAULT_TUNED_RATES;
  if (!o.sweep && o.lr === undefined && !existsSync(ratesFile))
    throw new UsageError(
      `--rates ${ratesFile}: no such file (make it with \`loraga demo --sweep\`)`,
    );
  return { options: o, methods, modelDir, ratesFile };
}

/** One `loraga train` run of the demo. */
interface RunSpec {
  method: string;
  lr: number;
  seed: number;
  dir: string;
  evalFile: string;
}

async function runDemo(plan: Plan): Promise<void> {
  const { options, methods, modelDir } = plan;
  const size = options.quick ? QUICK : FULL;
  const steps = options.steps ?? size.steps;
  const batchSize = options.batchSize ?? size.batchSize;
  const seedCount = options.seeds ?? size.seeds;
  const testRowCount = options.testRows ?? size.testRows;
  const trainRowCount = Math.max(size.trainRows, steps * batchSize);
  const say = (s: string) => {
    if (!options.quiet) process.stderr.write(`${s}\n`);
  };
  const out = options.out;
  await prepareOut(out, methods);

  const t0 = performance.now();
  const { train, test: pool } = makeArithSplits(trainRowCount, testRowCount + size.valRows, 1);
  const test = pool.slice(0, testRowCount);
  const validation = pool.slice(testRowCount);
  const dataDir = join(out, "data");
  await makeDirs(dataDir);
  const files = {
    train: join(dataDir, "train.jsonl"),
    test: join(dataDir, "test.jsonl"),
    validation: join(dataDir, "validation.jsonl"),
  };
  await writeFile(files.train, toJsonl(train));
  await writeFile(files.test, toJsonl(test));
  await writeFile(files.validation, toJsonl(validation));
  say(
    `demo: ${train.length} training, ${test.length} held-out and ${validation.length} validation arithmetic word problems in ${dataDir}`,
  );
  say(
    `demo: model ${modelDir}; ${steps} steps of ${batchSize} rows per run, r ${options.r}, alpha ${options.alpha}, kernels ${options.kernels}`,
  );
  const trainRun = (spec: RunSpec, index: number, total: number) =>
    runSubcommand(
      trainArgs(spec, {
        ...plan,
        steps,
        batchSize,
        trainFile: files.train,
        gaBatches: size.gaBatches,
      }),
      () =>
        say(
          `[${index}/${total}] ${spec.method} lr ${formatLr(spec.lr)} seed ${spec.seed}: training`,
        ),
    );

  if (options.sweep) {
    const runs: RunSpec[] = methods.flatMap((method) =>
      sweepRates(method).map((lr) => ({
        method,
        lr,
        seed: options.seed,
        dir: join(out, "sweep", `${method}-lr${formatLr(lr)}`),
        evalFile: files.validation,
      })),
    );
    const sweep: TunedRates["sweep"] = {};
    const rates: TunedRates["rates"] = {};
    for (const [i, spec] of runs.entries()) {
      await trainRun(spec, i + 1, runs.length);
      const log = await readRunDir(spec.dir);
      const loss = log.eval[log.eval.length - 1]?.eval_loss ?? Number.NaN;
      say(`   validation loss ${loss.toFixed(4)}`);
      sweep[spec.method] = [...(sweep[spec.method] ?? []), [spec.lr, loss]];
    }
    for (const [method, points] of Object.entries(sweep))
      rates[method] = [...points].sort((a, b) => a[1] - b[1])[0][0];
    const seconds = (performance.now() - t0) / 1000;
    const result: TunedRates = {
      rates,
      sweep,
      settings: {
        steps,
        batch_size: batchSize,
        seed: options.seed,
        validation_rows: validation.length,
        criterion: "lowest validation loss after the last step",
        kernels: options.kernels,
        seconds: Math.round(seconds),
      },
    };
    await writeFileAtomic(join(out, "tuned-rates.json"), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(rates)}\n`);
    say(`demo: wrote ${join(out, "tuned-rates.json")} (${seconds.toFixed(0)} s)`);
    return;
  }

  const tuned =
    options.lr === undefined
      ? parseTunedRates(await readFile(plan.ratesFile, "utf8"), plan.ratesFile)
      : { rates: {}, sweep: {}, settings: {} };
  const protocols = protocolsOf(methods, tuned, options.lr);
  const seeds = Array.from({ length: seedCount }, (_, i) => options.seed + i);
  const specs = new Map<string, RunSpec>();
  for (const p of protocols)
    for (const method of methods)
      for (const seed of seeds) {
        const lr = p.rates.get(method) as number;
        const key = `${method}-lr${formatLr(lr)}-seed${seed}`;
        specs.set(key, { method, lr, seed, dir: join(out, "runs", key), evalFile: files.test });
      }
  const done = new Map<string, SeedRun>();
  let index = 0;
  for (const [key, spec] of specs) {
    index++;
    const started = performance.now();
    await trainRun(spec, index, specs.size);
    const trained = performance.now();
    const exactMatch = await scoreHeldOut(spec.dir, modelDir, test, options);
    const log = await readRunDir(spec.dir);
    done.set(key, { method: spec.method, lr: spec.lr, seed: spec.seed, log, exactMatch });
    const s = (a: number, b: number) => ((b - a) / 1000).toFixed(0);
    const now = performance.now();
    say(
      `   held-out loss ${(log.eval[log.eval.length - 1]?.eval_loss ?? Number.NaN).toFixed(4)}, exact match ${(100 * exactMatch).toFixed(1)}% (${s(started, now)} s: training and held-out loss ${s(started, trained)} s, generation ${s(trained, now)} s)`,
    );
  }

  const summaries = protocols.map((p) => {
    const runs = methods.flatMap((method) =>
      seeds.map(
        (seed) =>
          done.get(`${method}-lr${formatLr(p.rates.get(method) as number)}-seed${seed}`) as SeedRun,
      ),
    );
    return { summary: summarise(p.name, runs), description: p.description };
  });
  const paragraphs = summaries.map((s) => conclusion(s.summary, s.summary.name));
  const seconds = (performance.now() - t0) / 1000;
  const subtitle =
    `${specs.size} runs: ${methods.length} methods x ${seeds.length} seeds (seeds ${seeds.join(", ")}: init and data order), ` +
    `${steps} steps of ${batchSize} problems, r ${options.r}, alpha ${options.alpha}; ${test.length} held-out problems; ` +
    `kernels ${options.kernels}; ${Math.round(seconds)} s; ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}`;
  const reportFile = join(out, "report.html");
  await writeFileAtomic(
    reportFile,
    renderDemoReport({
      title: `loraga demo: ${methods.join(", ")} on arithmetic word problems`,
      subtitle,
      conclusion: paragraphs,
      protocols: summaries,
    }),
  );
  for (const s of summaries)
    process.stdout.write(`\n${s.summary.name} (${s.description})\n\n${protocolText(s.summary)}`);
  process.stdout.write(`\n${paragraphs.join("\n\n")}\n`);
  await writeFileAtomic(
    join(out, "summary.json"),
    `${JSON.stringify(
      {
        steps,
        batchSize,
        seeds,
        testRows: test.length,
        seconds,
        protocols: summaries.map((s) => ({
          name: s.summary.name,
          description: s.description,
          target: s.summary.target,
          halfTheSteps: s.summary.halfTheSteps,
          methods: s.summary.methods.map(({ runs: _runs, stats: _stats, ...rest }) => rest),
        })),
        conclusion: paragraphs,
      },
      null,
      2,
    )}\n`,
  );
  say(`\ndemo: wrote ${reportFile} (${seconds.toFixed(0)} s)`);
}

/** `loraga train` arguments of one run. */
function trainArgs(
  spec: RunSpec,
  p: Plan & { steps: number; batchSize: number; trainFile: string; gaBatches: number },
): string[] {
  const o = p.options;
  return [
    "train",
    "--model",
    p.modelDir,
    "--data",
    p.trainFile,
    "--eval-data",
    spec.evalFile,
    "--method",
    spec.method,
    "--r",
    String(o.r),
    "--alpha",
    String(o.alpha),
    "--lr",
    String(spec.lr),
    "--schedule",
    "cosine",
    "--warmup",
    String(Math.round(p.steps * 0.03)),
    "--steps",
    String(p.steps),
    "--batch-size",
    String(p.batchSize),
    "--max-length",
    "256",
    "--ga-batches",
    String(p.gaBatches),
    "--eval-every",
    String(p.steps),
    "--seed",
    String(spec.seed),
    "--name",
    spec.method,
    "--out",
    spec.dir,
    "--kernels",
    o.kernels,
    ...(o.threads === undefined ? [] : ["--threads", String(o.threads)]),
    "-q",
  ];
}

/** Held-out exact match of a finished run, recorded in its run.json. */
async function scoreHeldOut(
  runDir: string,
  modelDir: string,
  test: readonly TaskRow[],
  options: Options,
): Promise<number> {
  const engine = await openEngine(options);
  try {
    const result = await evaluateHeldOut(runDir, modelDir, test, {
      kernels: engine.kernels,
      batchSize: 50,
      maxNewTokens: options.maxNewTokens,
    });
    await recordMetrics(runDir, { exact_match: result.exactMatch });
    return result.exactMatch;
  } finally {
    await engine.dispose();
  }
}

/** Runs a `loraga` subcommand in this process (same code path, defaults and checks as the CLI). */
async function runSubcommand(args: string[], announce: () => void): Promise<void> {
  announce();
  const program = new Command("loraga").exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerTrain.register(program);
  await program.parseAsync(args, { from: "user" });
}

/** Creates OUT, or clears the outputs of an earlier demo there (check() refused any other). */
async function prepareOut(out: string, methods: readonly string[]): Promise<void> {
  if (existsSync(out) && readdirSync(out).length > 0) {
    // check() refused any non-empty OUT without the marker
    for (const name of [
      ...DEMO_METHOD_NAMES,
      "runs",
      "sweep",
      "data",
      "report.html",
      "summary.json",
      "tuned-rates.json",
    ]) {
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
    "compare LoRA, LoRA-GA, PiSSA, LoRA-One and full fine-tuning on the embedded model and task, over seeds and two learning-rate protocols; writes report.html",
  schema: SCHEMA,
  helpAfter:
    "\nExamples:\n  loraga demo                      # what `npm start` runs (time: see demo/README.md)\n" +
    "  loraga demo --quick --out /tmp/demo\n  loraga demo --methods lora,lora-ga --seeds 5\n" +
    "  loraga demo --sweep --out runs/demo-sweep   # the learning-rate sweep behind demo/tuned-rates.json\n",
  check,
  run: runDemo,
});
