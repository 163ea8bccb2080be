// Held-out evaluation of one finished demo run: greedy generation on the test prompts scored by
// GSM8K exact match (src/train/metrics.ts gsm8kExactMatch). (The held-out loss is already in the
// run's log: `loraga train --eval-data`.) The trained weights are loaded as a user would load them: the full fine-tuned model
// (RUN/model), or the base with the run's adapter for the ORIGINAL base (RUN/adapter-converted
// when the init moved the base, as LoRA-GA and PiSSA do; RUN/adapter otherwise).
// Reads only; the caller records the numbers (recordMetrics).

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { groupIntoBatches } from "../data/batches.js";
import { writeFileAtomic } from "../io/atomic-write.js";
import { loadTokenizer } from "../io/tokenizer.js";
import type { Kernels } from "../kernels/kernels.js";
import { loadModel } from "../models/model.js";
import { loadPeftModel } from "../peft/peft-model.js";
import { generate } from "../train/generate.js";
import { gsm8kExactMatch } from "../train/metrics.js";
import type { TaskRow } from "./arith-task.js";

export interface HeldOutResult {
  /** Fraction of test rows whose generated final number equals the reference's. */
  exactMatch: number;
  /** A few generations, for the log: prompt, generated text, reference. */
  samples: { prompt: string; generated: string; reference: string }[];
}

export interface HeldOutOptions {
  kernels: Kernels;
  /** Rows per generation / loss batch. */
  batchSize: number;
  maxNewTokens: number;
}

/** Evaluates the run in `runDir` (trained from `baseDir`) on `testRows`. */
export async function evaluateHeldOut(
  runDir: string,
  baseDir: string,
  testRows: readonly TaskRow[],
  options: HeldOutOptions,
): Promise<HeldOutResult> {
  const fullModel = join(runDir, "model");
  const fullFineTuned = existsSync(join(fullModel, "config.json"));
  const modelDir = fullFineTuned ? fullModel : baseDir;
  const model = await loadModel(modelDir, { kernels: options.kernels });
  try {
    if (!fullFineTuned) {
      const converted = join(runDir, "adapter-converted");
      const adapter = existsSync(join(converted, "adapter_config.json"))
        ? converted
        : join(runDir, "adapter");
      if (!existsSync(join(adapter, "adapter_config.json")))
        throw new Error(`${runDir}: neither model/ nor an adapter to evaluate`);
      await loadPeftModel(model, adapter);
    }
    const tokenizer = await loadTokenizer(modelDir);
    const padTokenId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
    let correct = 0;
    const samples: HeldOutResult["samples"] = [];
    for (const group of groupIntoBatches([...testRows], options.batchSize)) {
      const outputs = await generate(
        model,
        group.map((r) => tokenizer.encode(r.prompt, { addSpecialTokens: true })),
        { maxNewTokens: options.maxNewTokens, eosTokenId: tokenizer.eosTokenId, padTokenId },
      );
      outputs.forEach((ids, i) => {
        const generated = tokenizer.decode(ids, { skipSpecialTokens: true });
        if (gsm8kExactMatch(generated, group[i].completion)) correct++;
        if (samples.length < 3)
          samples.push({ prompt: group[i].prompt, generated, reference: group[i].completion });
      });
    }
    return { exactMatch: testRows.length === 0 ? Number.NaN : correct / testRows.length, samples };
  } finally {
    model.dispose();
  }
}

/** Adds (or replaces) metrics in RUN/run.json's final_metrics, atomically. */
export async function recordMetrics(
  runDir: string,
  metrics: Readonly<Record<string, number>>,
): Promise<void> {
  const path = join(runDir, "run.json");
  const summary = JSON.parse(await readFile(path, "utf8")) as {
    final_metrics?: { name: string; value: number }[];
  };
  const kept = (summary.final_metrics ?? []).filter((m) => !(m.name in metrics));
  summary.final_metrics = [
    ...kept,
    ...Object.entries(metrics).map(([name, value]) => ({ name, value })),
  ];
  await writeFileAtomic(path, `${JSON.stringify(summary, null, 2)}\n`);
}
