// The numbers the comparison report shows for each run, computed from its log and summary.
//
// - Smoothed training loss: trailing mean of the last `smoothWindow` logged step losses (fewer at
//   the start), so a single lucky batch does not count as "reaching" a loss.
// - Target loss: options.targetLoss if given; else the final smoothed training loss of the run
//   named "lora" (the plain LoRA baseline); else the largest final smoothed loss over the runs
//   (the loss every run reaches).
// - Steps / wall time to target: the first logged step whose smoothed loss is <= target, and its
//   cumulative elapsed_s; null = not reached.
// - Init overhead: run.json init_seconds, else estimate_seconds + svd_seconds when either is given.
// - Learning rate: the largest lr logged (the configured peak rate of a warmup + decay schedule).
// - Throughput: total tokens / total step time (step time = tokens / tokens_per_s) over the steps
//   that log both; else the mean of tokens_per_s.
// - Peak memory: the largest peak_memory logged (engine bytes).
// - Final eval: the last eval record's loss and perplexity; final metrics from run.json.

import type { RunLog } from "./run-log.js";

export interface CompareOptions {
  /** Loss to reach; default: see the module comment. */
  targetLoss?: number;
  /** Trailing-mean window for the training loss (default 10; 1 = raw losses). */
  smoothWindow?: number;
}

export const DEFAULT_SMOOTH_WINDOW = 10;
/** Largest smoothing window (bounds the O(steps x window) smoothing). */
const MAX_SMOOTH_WINDOW = 1000;
const BASELINE_RUN_NAME = "lora";
/** run.json metrics shown by the eval-loss and perplexity columns when the log has evaluations. */
const DUPLICATES_OF_EVAL_COLUMNS = new Set(["eval_loss", "perplexity"]);

interface Target {
  loss: number;
  /** How it was chosen, for the report's caption. */
  source: "given" | "baseline" | "max-final";
}

export interface RunStats {
  name: string;
  method: string | null;
  steps: number;
  /** Peak logged learning rate; null when the log has none. */
  peakLr: number | null;
  wallSeconds: number | null;
  finalLoss: number;
  reached: { step: number; seconds: number | null } | null;
  initSeconds: number | null;
  estimateSeconds: number | null;
  svdSeconds: number | null;
  finalEvalLoss: number | null;
  finalPerplexity: number | null;
  metrics: Map<string, number>;
  tokensPerSecond: number | null;
  peakMemory: number | null;
}

export interface Comparison {
  target: Target;
  smoothWindow: number;
  runs: RunStats[];
  /** Names of the final metrics any run reports, in first-seen order. */
  metricNames: string[];
}

/**
 * Trailing mean over the last `window` values (window >= 1), summed afresh at each point so that
 * window 1 returns the losses exactly (a running sum would drift by rounding).
 */
export function smoothLosses(losses: readonly number[], window: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < losses.length; i++) {
    const from = Math.max(0, i - window + 1);
    let sum = 0;
    for (let j = from; j <= i; j++) sum += losses[j];
    out.push(sum / (i - from + 1));
  }
  return out;
}

/**
 * Centred mean over `window` values around each point (the window shrinks symmetrically at both
 * ends), for drawing: unlike the trailing mean it does not lag a fast-falling curve.
 */
export function centredMeans(values: readonly number[], window: number): number[] {
  const half = Math.floor(window / 2);
  return values.map((_, i) => {
    const reach = Math.min(half, i, values.length - 1 - i);
    let sum = 0;
    for (let j = i - reach; j <= i + reach; j++) sum += values[j];
    return sum / (2 * reach + 1);
  });
}

function chooseTarget(
  runs: readonly RunLog[],
  finals: readonly number[],
  options: CompareOptions,
): Target {
  if (options.targetLoss !== undefined) return { loss: options.targetLoss, source: "given" };
  const baseline = runs.findIndex((r) => r.name === BASELINE_RUN_NAME);
  if (baseline >= 0) return { loss: finals[baseline], source: "baseline" };
  return { loss: Math.max(...finals), source: "max-final" };
}

function throughput(run: RunLog): number | null {
  let tokens = 0;
  let seconds = 0;
  const rates: number[] = [];
  for (const p of run.train) {
    if (p.tokens_per_s === null || p.tokens_per_s <= 0) continue;
    rates.push(p.tokens_per_s);
    if (p.tokens !== null) {
      tokens += p.tokens;
      seconds += p.tokens / p.tokens_per_s;
    }
  }
  if (seconds > 0) return tokens / seconds;
  return rates.length === 0 ? null : rates.reduce((a, b) => a + b, 0) / rates.length;
}

function maxOrNull(values: readonly (number | null)[]): number | null {
  let best: number | null = null;
  for (const v of values) if (v !== null && (best === null || v > best)) best = v;
  return best;
}

export function compareRuns(runs: readonly RunLog[], options: CompareOptions = {}): Comparison {
  if (runs.length === 0) throw new Error("compare: no runs");
  const smoothWindow = options.smoothWindow ?? DEFAULT_SMOOTH_WINDOW;
  if (!Number.isSafeInteger(smoothWindow) || smoothWindow < 1 || smoothWindow > MAX_SMOOTH_WINDOW) {
    throw new Error(
      `compare: smoothing window must be an integer in [1, ${MAX_SMOOTH_WINDOW}], got ${smoothWindow}`,
    );
  }
  if (options.targetLoss !== undefined && !Number.isFinite(options.targetLoss))
    throw new Error(`compare: target loss must be finite, got ${options.targetLoss}`);
  for (const r of runs)
    if (r.train.length === 0) throw new Error(`compare: run "${r.name}" has no training steps`);
  const smoothed = runs.map((r) =>
    smoothLosses(
      r.train.map((p) => p.loss),
      smoothWindow,
    ),
  );
  const finals = smoothed.map((s) => s[s.length - 1]);
  const target = chooseTarget(runs, finals, options);
  const metricNames: string[] = [];
  const stats = runs.map((run, i): RunStats => {
    const hit = smoothed[i].findIndex((l) => l <= target.loss);
    const last = run.train[run.train.length - 1];
    const lastEval = run.eval.length === 0 ? null : run.eval[run.eval.length - 1];
    const s = run.summary;
    const initSeconds =
      s.init_seconds ??
      (s.estimate_seconds === null && s.svd_seconds === null
        ? null
        : (s.estimate_seconds ?? 0) + (s.svd_seconds ?? 0));
    const metrics = new Map<string, number>();
    for (const m of s.final_metrics) {
      // `loraga train` also records its last evaluation here; the log's columns already show it
      if (lastEval !== null && DUPLICATES_OF_EVAL_COLUMNS.has(m.name)) continue;
      metrics.set(m.name, m.value);
      if (!metricNames.includes(m.name)) metricNames.push(m.name);
    }
    return {
      name: run.name,
      method: s.method,
      steps: last.step,
      peakLr: maxOrNull(run.train.map((p) => p.lr)),
      wallSeconds: last.elapsed_s,
      finalLoss: finals[i],
      reached: hit < 0 ? null : { step: run.train[hit].step, seconds: run.train[hit].elapsed_s },
      initSeconds,
      estimateSeconds: s.estimate_seconds,
      svdSeconds: s.svd_seconds,
      finalEvalLoss: lastEval?.eval_loss ?? null,
      finalPerplexity: lastEval?.perplexity ?? null,
      metrics,
      tokensPerSecond: throughput(run),
      peakMemory: maxOrNull(run.train.map((p) => p.peak_memory)),
    };
  });
  return { target, smoothWindow, runs: stats, metricNames };
}
