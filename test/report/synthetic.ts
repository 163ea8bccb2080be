// Small synthetic run logs with hand-checkable numbers, shared by the report and CLI tests.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface SyntheticRun {
  name: string;
  losses: number[];
  elapsed: number[];
  tokensPerS?: number[];
  peak?: number[];
  evals?: [step: number, loss: number][];
  summary?: Record<string, unknown>;
}

export function logText(run: SyntheticRun): string {
  const lines: string[] = [];
  run.losses.forEach((loss, i) => {
    lines.push(
      JSON.stringify({
        type: "train",
        step: i + 1,
        loss,
        lr: 1e-3,
        grad_norm: 1,
        tokens: 100,
        tokens_per_s: run.tokensPerS?.[i] ?? 100,
        elapsed_s: run.elapsed[i],
        peak_memory: run.peak?.[i] ?? 1024,
      }),
    );
    for (const [step, evalLoss] of run.evals ?? []) {
      if (step === i + 1)
        lines.push(
          JSON.stringify({
            type: "eval",
            step,
            eval_loss: evalLoss,
            perplexity: Math.exp(evalLoss),
            eval_tokens: 50,
          }),
        );
    }
  });
  return `${lines.join("\n")}\n`;
}

/** lora: baseline; lora-ga: faster, with init overhead; slow: never reaches the baseline. */
export const RUNS: SyntheticRun[] = [
  {
    name: "lora",
    losses: [4.0, 3.0, 2.5, 2.0],
    elapsed: [1, 2, 3, 4],
    tokensPerS: [100, 200, 100, 200],
    peak: [10, 30, 20, 25],
    evals: [
      [2, 3.2],
      [4, 2.4],
    ],
    summary: { name: "lora", method: "default" },
  },
  {
    name: "lora-ga",
    losses: [3.0, 2.0, 1.5, 1.2],
    elapsed: [1.5, 3, 4.5, 6],
    evals: [
      [2, 2.2],
      [4, 1.6],
    ],
    summary: {
      name: "lora-ga",
      method: "lora_ga",
      init_seconds: 5,
      estimate_seconds: 4,
      svd_seconds: 0.5,
      final_metrics: [{ name: "exact_match", value: 0.25 }],
    },
  },
  {
    name: "slow",
    losses: [5, 4.5, 4.2, 4.1],
    elapsed: [1, 2, 3, 4],
    summary: { name: "slow", method: "gaussian" },
  },
];

export function writeRunDir(root: string, run: SyntheticRun): string {
  const dir = join(root, run.name.replace(/[^A-Za-z0-9-]/g, "_"));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "train.jsonl"), logText(run));
  if (run.summary !== undefined) writeFileSync(join(dir, "run.json"), JSON.stringify(run.summary));
  return dir;
}
