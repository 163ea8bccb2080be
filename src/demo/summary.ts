// The demo's numbers across seeds, for one protocol: per method, the mean and the spread of each
// figure over its seeds; the target (default LoRA's final training loss, averaged over its seeds);
// the verdict on "LoRA-GA reaches that loss in at most half the steps"; and the conclusion in
// plain words, generated from those numbers only.
//
// Spread = the sample standard deviation over seeds (n - 1 in the denominator; 0 for one seed).
// A method's runs reach the target at the first step whose trailing mean training loss
// (report/stats.ts, DEFAULT_SMOOTH_WINDOW steps) is at or below it; a run that never does counts
// as "not reached" and is left out of the steps' mean.

import type { RunLog } from "../report/run-log.js";
import { compareRuns, type RunStats } from "../report/stats.js";

export interface Stat {
  mean: number;
  sd: number;
  n: number;
}

/** One finished run of the demo. */
export interface SeedRun {
  method: string;
  lr: number;
  seed: number;
  log: RunLog;
  /** Held-out exact match in [0, 1]. */
  exactMatch: number;
}

export interface MethodSummary {
  method: string;
  lr: number;
  runs: readonly SeedRun[];
  stats: readonly RunStats[];
  finalLoss: Stat;
  heldOutLoss: Stat | null;
  exactMatch: Stat;
  initSeconds: Stat | null;
  trainSeconds: Stat | null;
  /** Steps to the target over the seeds that reached it; null when none did. */
  stepsToTarget: Stat | null;
  reachedCount: number;
}

export interface ProtocolSummary {
  name: string;
  /** Steps each run trained. */
  steps: number;
  /** Default LoRA's mean final training loss. */
  target: number;
  methods: MethodSummary[];
  /** LoRA-GA reached the target within steps / 2 in every seed; null without both methods. */
  halfTheSteps: boolean | null;
}

export function statOf(values: readonly number[]): Stat {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? 0 : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  return { mean, sd, n };
}

const statOrNull = (values: readonly (number | null)[]): Stat | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : statOf(known);
};

/** Summarises one protocol's runs (several seeds per method; "lora" sets the target). */
export function summarise(name: string, runs: readonly SeedRun[]): ProtocolSummary {
  const methods = [...new Set(runs.map((r) => r.method))];
  const baseline = runs.filter((r) => r.method === "lora");
  const finalOf = (r: SeedRun) => compareRuns([r.log]).runs[0].finalLoss;
  const target =
    baseline.length > 0
      ? statOf(baseline.map(finalOf)).mean
      : Math.max(...runs.map((r) => finalOf(r)));
  const steps = Math.max(...runs.map((r) => r.log.train[r.log.train.length - 1].step));
  const summaries = methods.map((method): MethodSummary => {
    const mine = runs.filter((r) => r.method === method);
    const stats = compareRuns(
      mine.map((r) => r.log),
      { targetLoss: target },
    ).runs;
    const reached = stats.filter((s) => s.reached !== null);
    return {
      method,
      lr: mine[0].lr,
      runs: mine,
      stats,
      finalLoss: statOf(stats.map((s) => s.finalLoss)),
      heldOutLoss: statOrNull(stats.map((s) => s.finalEvalLoss)),
      exactMatch: statOf(mine.map((r) => r.exactMatch)),
      initSeconds: statOrNull(stats.map((s) => s.initSeconds)),
      trainSeconds: statOrNull(stats.map((s) => s.wallSeconds)),
      stepsToTarget: reached.length === 0 ? null : statOf(reached.map((s) => s.reached?.step ?? 0)),
      reachedCount: reached.length,
    };
  });
  const ga = summaries.find((m) => m.method === "lora-ga");
  const halfTheSteps =
    ga === undefined || baseline.length === 0
      ? null
      : ga.stats.every((s) => s.reached !== null && s.reached.step <= steps / 2);
  return { name, steps, target, methods: summaries, halfTheSteps };
}

const pct = (s: Stat) => `${(100 * s.mean).toFixed(1)}% ± ${(100 * s.sd).toFixed(1)}`;

/** "a ± b" with `digits` decimals. */
export function formatStat(s: Stat | null, digits: number): string {
  return s === null ? "-" : `${s.mean.toFixed(digits)} ± ${s.sd.toFixed(digits)}`;
}

export const formatPercentStat = (s: Stat): string => pct(s);

/** Whether two means differ by more than the sum of their spreads (a rough, stated rule). */
const clearlyApart = (a: Stat, b: Stat) => Math.abs(a.mean - b.mean) > a.sd + b.sd;

/** One paragraph per protocol, in plain words, from the numbers only. */
export function conclusion(p: ProtocolSummary, description: string): string {
  const lora = p.methods.find((m) => m.method === "lora");
  const ga = p.methods.find((m) => m.method === "lora-ga");
  const seeds = Math.max(...p.methods.map((m) => m.runs.length));
  const parts: string[] = [`${description}, ${seeds} seeds per method, ${p.steps} steps:`];
  if (lora !== undefined && ga !== undefined) {
    const n = ga.runs.length;
    parts.push(
      ga.reachedCount === 0
        ? `LoRA-GA never reached default LoRA's mean final training loss (${p.target.toFixed(3)}) in ${p.steps} steps.`
        : `LoRA-GA reached default LoRA's mean final training loss (${p.target.toFixed(3)}) in ${ga.reachedCount} of ${n} seeds, ` +
            `after ${formatStat(ga.stepsToTarget, 0)} steps of ${p.steps}` +
            (lora.stepsToTarget === null ? "" : ` (LoRA: ${formatStat(lora.stepsToTarget, 0)})`) +
            ".",
    );
    parts.push(
      p.halfTheSteps === true
        ? "So here LoRA-GA did get there in half the steps or fewer, in every seed."
        : "So here LoRA-GA did not get there in half the steps in every seed.",
    );
    const cmp = clearlyApart(ga.exactMatch, lora.exactMatch)
      ? ga.exactMatch.mean > lora.exactMatch.mean
        ? "higher than"
        : "lower than"
      : "within the seed spread of";
    parts.push(
      `Held-out exact match: LoRA-GA ${pct(ga.exactMatch)}, ${cmp} LoRA's ${pct(lora.exactMatch)}.`,
    );
  }
  const best = [...p.methods].sort((a, b) => b.exactMatch.mean - a.exactMatch.mean)[0];
  parts.push(
    `Highest exact match: ${best.method} (${pct(best.exactMatch)}, at lr ${best.lr}). ` +
      `Differences smaller than the ± spreads (standard deviation over seeds) are not evidence either way.`,
  );
  return parts.join(" ");
}
