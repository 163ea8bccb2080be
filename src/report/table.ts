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

/** Final metrics that are fractions in [0, 1], shown as percentages. */
const FRACTION_METRICS = new Set(["exact_match", "accuracy"]);

/** A final metric's cell: a percentage for fraction metrics (console and report alike). */
function formatMetric(name: string, x: number | null): string {
  if (x === null) return MISSING;
  return FRACTION_METRICS.has(name) ? `${(100 * x).toFixed(1)}%` : formatNumber(x);
}

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

/** Column title of the time to the target plus the init overhead. */
export const WITH_INIT_HEADER = "time to target + init";

export function comparisonTable(c: Comparison): Table {
  // the method column only when it says something the run name does not
  const showMethod = c.runs.some((r) => r.method !== null && r.method !== r.name);
  const columns: { title: string; numeric: boolean; cell: (r: RunStats) => string }[] = [
    { title: "run", numeric: false, cell: (r) => r.name },
    ...(showMethod
      ? [{ title: "method", numeric: false, cell: (r: RunStats) => r.method ?? MISSING }]
      : []),
    { title: "lr", numeric: true, cell: (r) => formatLr(r.peakLr) },
    { title: "steps", numeric: true, cell: (r) => String(r.steps) },
    { title: "wall time", numeric: true, cell: (r) => formatSeconds(r.wallSeconds) },
    {
      title: "steps to target",
      numeric: true,
      cell: (r) => (r.reached === null ? NOT_REACHED : String(r.reached.step)),
    },
    {
      title: "time to target",
      numeric: true,
      cell: (r) => (r.reached === null ? NOT_REACHED : formatSeconds(r.reached.seconds)),
    },
    {
      title: WITH_INIT_HEADER,
      numeric: true,
      cell: (r) =>
        r.reached === null
          ? NOT_REACHED
          : r.reached.seconds === null
            ? MISSING
            : formatSeconds(r.reached.seconds + (r.initSeconds ?? 0)),
    },
    { title: "init overhead", numeric: true, cell: initText },
    { title: "final train loss", numeric: true, cell: (r) => formatLoss(r.finalLoss) },
    { title: "final eval loss", numeric: true, cell: (r) => formatLoss(r.finalEvalLoss) },
    {
      title: "perplexity",
      numeric: true,
      cell: (r) => (r.finalPerplexity === null ? MISSING : r.finalPerplexity.toFixed(2)),
    },
    ...c.metricNames.map((m) => ({
      title: m,
      numeric: true,
      cell: (r: RunStats) => formatMetric(m, r.metrics.get(m) ?? null),
    })),
    { title: "tokens/s", numeric: true, cell: (r) => formatRate(r.tokensPerSecond) },
    { title: "peak memory", numeric: true, cell: (r) => formatBytes(r.peakMemory) },
  ];
  const numeric = new Set<number>();
  columns.forEach((col, i) => {
    if (col.numeric) numeric.add(i);
  });
  return {
    header: columns.map((col) => col.title),
    rows: c.runs.map((r) => columns.map((col) => col.cell(r))),
    numeric,
  };
}

/** A learning rate as a short decimal or exponent ("5e-4", "0.01"). */
export function formatLr(x: number | null): string {
  if (x === null) return MISSING;
  if (x === 0) return "0";
  return x < 0.01 ? x.toExponential(1).replace(".0e", "e") : String(Number(x.toPrecision(2)));
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
