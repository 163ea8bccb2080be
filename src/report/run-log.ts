// Training-run records as the comparison report reads them, and their parsers (pure: text in,
// typed records out, no file system — read-run.ts does the reading on Node).
//
// A run directory holds:
//   train.jsonl  the trainer's log (src/train/trainer.ts), one JSON object per line:
//                {"type":"train","step","loss","lr","grad_norm","tokens","tokens_per_s","elapsed_s","peak_memory"}
//                {"type":"eval","step","eval_loss","perplexity","eval_tokens"}
//                Only step/loss (train) and step/eval_loss (eval) are required; unknown keys are
//                ignored; blank lines are skipped. A record without "type" is an eval record when it
//                has "eval_loss", else a train record.
//   run.json     the run summary (optional; written by `loraga train`), see RunSummary.
// Resumed runs append to the same log: a step logged again replaces the earlier record, and when
// elapsed_s restarts (a new process) the new segment's times are shifted to continue from the
// time of the step it resumed after, so elapsed times stay cumulative.
// Every error names the file and, for the log, the 1-based line.

/** One optimiser step. elapsed_s is cumulative wall time since the start of training. */
export interface TrainPoint {
  step: number;
  loss: number;
  /** Learning rate of this step (after warmup and schedule). */
  lr: number | null;
  elapsed_s: number | null;
  tokens: number | null;
  tokens_per_s: number | null;
  peak_memory: number | null;
}

/** One evaluation, after `step` optimiser steps. */
export interface EvalPoint {
  step: number;
  eval_loss: number;
  perplexity: number | null;
}

interface FinalMetric {
  name: string;
  value: number;
}

/**
 * run.json: what the log cannot tell. All fields optional.
 *   {"name": "lora-ga", "method": "lora_ga", "model": "...", "r": 8,
 *    "init_seconds": 12.5, "estimate_seconds": 10.1, "svd_seconds": 2.2,
 *    "final_metrics": [{"name": "exact_match", "value": 0.41}]}
 * init_seconds is the whole adapter initialisation (estimate + SVD + the rest); when absent the
 * report uses estimate_seconds + svd_seconds.
 */
export interface RunSummary {
  name: string | null;
  method: string | null;
  model: string | null;
  r: number | null;
  init_seconds: number | null;
  estimate_seconds: number | null;
  svd_seconds: number | null;
  final_metrics: FinalMetric[];
}

/** A run as the report sees it: display name, summary, and the log sorted by step. */
export interface RunLog {
  name: string;
  summary: RunSummary;
  train: TrainPoint[];
  eval: EvalPoint[];
}

export const RUN_LOG_FILE = "train.jsonl";
export const RUN_SUMMARY_FILE = "run.json";

/** Upper bounds on what one run may hold (a log is text we did not write). */
const MAX_LOG_LINES = 1_000_000;
const MAX_METRICS = 64;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function finiteOrNull(where: string, record: Record<string, unknown>, key: string): number | null {
  const v = record[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new Error(`${where}: "${key}" must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function requiredNumber(where: string, record: Record<string, unknown>, key: string): number {
  const v = finiteOrNull(where, record, key);
  if (v === null) throw new Error(`${where}: missing "${key}"`);
  return v;
}

function stepOf(where: string, record: Record<string, unknown>): number {
  const step = requiredNumber(where, record, "step");
  if (!Number.isSafeInteger(step) || step < 0)
    throw new Error(`${where}: "step" must be an integer >= 0, got ${step}`);
  return step;
}

/**
 * Parses a trainer log. `file` is only used in error messages ("file:line: ...").
 * Returns train and eval points sorted by step, one per step (the last logged wins).
 */
export function parseTrainLog(
  text: string,
  file: string,
): { train: TrainPoint[]; eval: EvalPoint[] } {
  const lines = text.split("\n");
  if (lines.length > MAX_LOG_LINES) throw new Error(`${file}: more than ${MAX_LOG_LINES} lines`);
  const train = new Map<number, TrainPoint>();
  const evals = new Map<number, EvalPoint>();
  // Resume handling: raw elapsed_s of the previous train record, and the offset added to this segment.
  let lastRawElapsed = -Infinity;
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: not valid JSON (${(err as Error).message})`);
    }
    if (!isObject(value)) throw new Error(`${where}: expected a JSON object`);
    const type = value.type ?? ("eval_loss" in value ? "eval" : "train");
    if (type === "eval") {
      const step = stepOf(where, value);
      evals.set(step, {
        step,
        eval_loss: requiredNumber(where, value, "eval_loss"),
        perplexity: finiteOrNull(where, value, "perplexity"),
      });
    } else if (type === "train") {
      const step = stepOf(where, value);
      const rawElapsed = finiteOrNull(where, value, "elapsed_s");
      let elapsed: number | null = null;
      if (rawElapsed !== null) {
        if (rawElapsed < lastRawElapsed) {
          // A new process (resume): continue from the cumulative time of the step before this one.
          offset = train.get(step - 1)?.elapsed_s ?? 0;
        }
        lastRawElapsed = rawElapsed;
        elapsed = rawElapsed + offset;
      }
      train.set(step, {
        step,
        loss: requiredNumber(where, value, "loss"),
        lr: finiteOrNull(where, value, "lr"),
        elapsed_s: elapsed,
        tokens: finiteOrNull(where, value, "tokens"),
        tokens_per_s: finiteOrNull(where, value, "tokens_per_s"),
        peak_memory: finiteOrNull(where, value, "peak_memory"),
      });
    } else {
      throw new Error(
        `${where}: unknown record type ${JSON.stringify(type)} (expected "train" or "eval")`,
      );
    }
  }
  const byStep = <T extends { step: number }>(m: Map<number, T>) =>
    [...m.values()].sort((a, b) => a.step - b.step);
  return { train: byStep(train), eval: byStep(evals) };
}

function stringOrNull(where: string, record: Record<string, unknown>, key: string): string | null {
  const v = record[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string")
    throw new Error(`${where}: "${key}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

export const EMPTY_SUMMARY: RunSummary = {
  name: null,
  method: null,
  model: null,
  r: null,
  init_seconds: null,
  estimate_seconds: null,
  svd_seconds: null,
  final_metrics: [],
};

/** Parses run.json (see RunSummary); unknown keys are ignored. */
export function parseRunSummary(text: string, file: string): RunSummary {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(value)) throw new Error(`${file}: expected a JSON object`);
  const metrics: FinalMetric[] = [];
  const raw = value.final_metrics ?? (value.final_metric === undefined ? [] : [value.final_metric]);
  if (!Array.isArray(raw))
    throw new Error(`${file}: "final_metrics" must be a list of {"name", "value"}`);
  if (raw.length > MAX_METRICS) throw new Error(`${file}: more than ${MAX_METRICS} final_metrics`);
  raw.forEach((m, i) => {
    const where = `${file}: final_metrics[${i}]`;
    if (!isObject(m)) throw new Error(`${where}: expected {"name", "value"}`);
    const name = stringOrNull(where, m, "name");
    if (name === null || name === "") throw new Error(`${where}: missing "name"`);
    metrics.push({ name, value: requiredNumber(where, m, "value") });
  });
  const r = finiteOrNull(file, value, "r");
  const seconds = (key: string) => {
    const s = finiteOrNull(file, value as Record<string, unknown>, key);
    if (s !== null && s < 0) throw new Error(`${file}: "${key}" must be >= 0, got ${s}`);
    return s;
  };
  return {
    name: stringOrNull(file, value, "name"),
    method: stringOrNull(file, value, "method"),
    model: stringOrNull(file, value, "model"),
    r,
    init_seconds: seconds("init_seconds"),
    estimate_seconds: seconds("estimate_seconds"),
    svd_seconds: seconds("svd_seconds"),
    final_metrics: metrics,
  };
}
