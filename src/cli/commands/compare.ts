// `loraga compare RUN_DIR...`: reads each run directory (train.jsonl + optional run.json, see
// src/report/run-log.ts), writes one self-contained HTML report atomically, and prints the
// comparison table as plain text on stdout. Errors name the file (and line, for the log).

import { writeFileAtomic } from "../../io/atomic-write.js";
import { renderReport } from "../../report/html.js";
import { readRunDir } from "../../report/read-run.js";
import { compareRuns, DEFAULT_SMOOTH_WINDOW } from "../../report/stats.js";
import { renderTextTable } from "../../report/table.js";
import { commandOf } from "../command.js";
import { UsageError } from "../errors.js";
import { configFlag } from "../options/engine.js";
import { checkOutputFile, overwriteFlag } from "../options/output.js";
import {
  intFlag,
  numberFlag,
  type Parsed,
  stringFlag,
  switchFlag,
  withDefault,
} from "../options/schema.js";
import { guardOutput } from "../output-guard.js";

const SCHEMA = {
  out: withDefault(stringFlag("--out <file>", "HTML report to write"), "report.html"),
  overwrite: overwriteFlag,
  targetLoss: numberFlag(
    "--target-loss <x>",
    'training loss to reach (default: final loss of the run named "lora", else the largest final loss)',
  ),
  smooth: withDefault(
    intFlag("--smooth <n>", "average the training loss over this many steps (1 = raw)"),
    DEFAULT_SMOOTH_WINDOW,
  ),
  logY: switchFlag("--log-y", "log-scaled loss axis"),
  title: stringFlag("--title <text>", "report title"),
  config: configFlag,
  quiet: switchFlag("-q, --quiet", "print nothing but errors"),
};

interface Plan {
  readonly options: Parsed<typeof SCHEMA>["options"];
  readonly dirs: readonly string[];
  /** --out as messages name it (from the flag or --config). */
  readonly outName: string;
}

function check(parsed: Parsed<typeof SCHEMA>, dirs: readonly string[]): Plan {
  if (dirs.length === 0) throw new UsageError("compare: give at least one run directory");
  checkOutputFile(parsed.name("out"), parsed.options.out);
  return { options: parsed.options, dirs, outName: parsed.name("out") };
}

async function run({ options: o, dirs, outName }: Plan): Promise<void> {
  await guardOutput({
    flag: outName,
    path: o.out,
    kind: "file",
    overwrite: o.overwrite,
    inputs: dirs.map((d) => ["run directory", d] as const),
  });
  const runs = [];
  for (const dir of dirs) runs.push(await readRunDir(dir));
  const seen = new Set<string>();
  for (const r of runs) {
    if (seen.has(r.name))
      throw new UsageError(
        `two runs are named "${r.name}"; set "name" in their run.json to tell them apart`,
      );
    seen.add(r.name);
  }
  const compareOptions = {
    smoothWindow: o.smooth,
    ...(o.targetLoss !== undefined && { targetLoss: o.targetLoss }),
  };
  const html = renderReport(runs, {
    ...compareOptions,
    logY: o.logY,
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    ...(o.title !== undefined && { title: o.title }),
  });
  await writeFileAtomic(o.out, html);
  if (!o.quiet) {
    process.stdout.write(renderTextTable(compareRuns(runs, compareOptions)));
    process.stderr.write(`wrote ${o.out}\n`);
  }
}

export const registerCompare = commandOf({
  name: "compare",
  description:
    "compare training runs: an HTML report with loss curves, and a summary table on stdout",
  schema: SCHEMA,
  argument: {
    syntax: "<run-dirs...>",
    help: "run directories written by `loraga train` (train.jsonl, run.json)",
  },
  helpAfter:
    "\nExample:\n  loraga compare runs/lora runs/lora-ga --out report.html\n  loraga compare runs/* --target-loss 1.2 --log-y\n",
  check,
  run,
});
