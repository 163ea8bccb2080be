// `loraga compare RUN_DIR...`: reads each run directory (train.jsonl + optional run.json, see
// src/report/run-log.ts), writes one self-contained HTML report atomically, and prints the
// comparison table as plain text on stdout. Errors name the file (and line, for the log).

import type { Command } from "commander";
import { writeFileAtomic } from "../../io/atomic-write.js";
import { renderReport } from "../../report/html.js";
import { readRunDir } from "../../report/read-run.js";
import { compareRuns, DEFAULT_SMOOTH_WINDOW } from "../../report/stats.js";
import { renderTextTable } from "../../report/table.js";
import { intFlag, numberFlag } from "../common.js";
import { resolveOptions, UsageError } from "../config-file.js";
import { guardOutput } from "../output-guard.js";

export function registerCompare(program: Command): void {
  const command = program
    .command("compare")
    .description(
      "compare training runs: an HTML report with loss curves, and a summary table on stdout",
    )
    .argument("<run-dirs...>", "run directories written by `loraga train` (train.jsonl, run.json)")
    .option("--out <file>", "HTML report to write", "report.html")
    .option("--overwrite", "replace an existing output", false)
    .option(
      "--target-loss <x>",
      'training loss to reach (default: final loss of the run named "lora", else the largest final loss)',
      numberFlag("--target-loss"),
    )
    .option(
      "--smooth <n>",
      "average the training loss over this many steps (1 = raw)",
      intFlag("--smooth"),
      DEFAULT_SMOOTH_WINDOW,
    )
    .option("--log-y", "log-scaled loss axis", false)
    .option("--title <text>", "report title")
    .option("--config <file>", "YAML or JSON file with option values (flags win)")
    .option("-q, --quiet", "print nothing but errors", false)
    .addHelpText(
      "after",
      "\nExample:\n  loraga compare runs/lora runs/lora-ga --out report.html\n  loraga compare runs/* --target-loss 1.2 --log-y\n",
    );
  command.action(async (dirs: string[]) => {
    const options = resolveOptions(command);
    if (dirs.length === 0) throw new UsageError("compare: give at least one run directory");
    await guardOutput({
      flag: "--out",
      path: options.out as string,
      kind: "file",
      overwrite: options.overwrite === true,
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
      smoothWindow: options.smooth as number,
      ...(options.targetLoss !== undefined && { targetLoss: options.targetLoss as number }),
    };
    const html = renderReport(runs, {
      ...compareOptions,
      logY: options.logY === true,
      generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      ...(options.title !== undefined && { title: options.title as string }),
    });
    const out = options.out as string;
    await writeFileAtomic(out, html);
    if (options.quiet !== true) {
      process.stdout.write(renderTextTable(compareRuns(runs, compareOptions)));
      process.stderr.write(`wrote ${out}\n`);
    }
  });
}
