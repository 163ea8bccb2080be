// The comparison table as plain strings (one header row, one row per run), shared by the HTML
// report and the CLI's text output, plus the text rendering. Missing values print as "-"; a
// target the run never reached prints as NOT_REACHED.

import type { Comparison, RunStats } from "./stats.js";

const NOT_REACHED = "not reached";
const MISSING = "-";

function formatSeconds(s: number | null): string {
  if (s === null) return MISSING;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m`;
}

function formatBytes(b: number | null): string {
  if (b === null) return MISSING;
  if (b < 1024 ** 2) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}

export const formatLoss = (x: number | null): string => (x === null ? MISSING : x.toFixed(4));

function formatNumber(x: number | null): string {
  if (x === null) return MISSING;
  return Number.isInteger(x) ? String(x) : x.toPrecision(4).replace(/\.?0+$/, "");
}

function formatRate(x: number | null): string {
  return x === null ? MISSING : x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(1);
}

function initText(r: RunStats): string {
  if (r.initSeconds === null) return MISSING;
  const parts: string[] = [];
  if (r.estimateSeconds !== null) parts.push(`est ${formatSeconds(r.estimateSeconds)}`);
  if (r.svdSeconds !== null) parts.push(`svd ${formatSeconds(r.svdSeconds)}`);
  return parts.length === 0
    ? formatSeconds(r.initSeconds)
    : `${formatSeconds(r.initSeconds)} (${parts.join(", ")})`;
}

export interface Table {
  header: string[];
  rows: string[][];
  /** Column indices holding numbers (right-aligned). */
  numeric: Set<number>;
}

export function comparisonTable(c: Comparison): Table {
  const header = [
    "run",
    "method",
    "steps",
    "wall time",
    "steps to target",
    "time to target",
    "+ init",
    "init overhead",
    "final train loss",
    "final eval loss",
    "perplexity",
    ...c.metricNames,
    "tokens/s",
    "peak memory",
  ];
  const rows = c.runs.map((r) => {
    const reachedTime = r.reached === null ? NOT_REACHED : formatSeconds(r.reached.seconds);
    const withInit =
      r.reached === null
        ? NOT_REACHED
        : r.reached.seconds === null
          ? MISSING
          : formatSeconds(r.reached.seconds + (r.initSeconds ?? 0));
    return [
      r.name,
      r.method ?? MISSING,
      String(r.steps),
      formatSeconds(r.wallSeconds),
      r.reached === null ? NOT_REACHED : String(r.reached.step),
      reachedTime,
      withInit,
      initText(r),
      formatLoss(r.finalLoss),
      formatLoss(r.finalEvalLoss),
      r.finalPerplexity === null ? MISSING : r.finalPerplexity.toFixed(2),
      ...c.metricNames.map((m) => formatNumber(r.metrics.get(m) ?? null)),
      formatRate(r.tokensPerSecond),
      formatBytes(r.peakMemory),
    ];
  });
  const numeric = new Set<number>();
  header.forEach((h, i) => {
    if (h !== "run" && h !== "method") numeric.add(i);
  });
  return { header, rows, numeric };
}

export function targetCaption(c: Comparison): string {
  const how =
    c.target.source === "given"
      ? "given with --target-loss"
      : c.target.source === "baseline"
        ? 'final training loss of the run named "lora"'
        : "largest final training loss of the runs";
  const smoothing =
    c.smoothWindow === 1
      ? "raw step losses"
      : `training loss smoothed over ${c.smoothWindow} steps`;
  return `target loss ${c.target.loss.toFixed(4)} (${how}; ${smoothing})`;
}

/** Terminal-safe cell text: control characters (escape sequences in a run name) become "?". */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const printable = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");

/** Fixed-width text table for a terminal, with the target caption on the first line. */
export function renderTextTable(c: Comparison): string {
  const t = comparisonTable(c);
  const all = [t.header, ...t.rows].map((row) => row.map(printable));
  const widths = t.header.map((_, j) => Math.max(...all.map((row) => row[j].length)));
  const line = (row: string[]) =>
    row
      .map((cell, j) => (t.numeric.has(j) ? cell.padStart(widths[j]) : cell.padEnd(widths[j])))
      .join("  ")
      .trimEnd();
  return [
    targetCaption(c),
    "",
    line(t.header),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...all.slice(1).map(line),
    "",
  ].join("\n");
}
