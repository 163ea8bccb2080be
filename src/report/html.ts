// renderReport: ONE self-contained HTML page comparing training runs — inline CSS, inline SVG, no
// script, no external asset (a Content-Security-Policy meta tag forbids both) — with the training
// and evaluation loss curves of every run on shared axes, a legend, and the comparison table
// (stats.ts, table.ts). Every user-supplied text (run names, methods, metric names, title) is
// escaped. Colours: the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which
// stays distinguishable under the common colour-vision deficiencies.

import type { RunLog } from "./run-log.js";
import { type CompareOptions, type Comparison, centredMeans, compareRuns } from "./stats.js";
import { escapeXml, niceDomain, renderChart, type Series } from "./svg-chart.js";
import { comparisonTable, formatLoss, targetCaption, WITH_INIT_HEADER } from "./table.js";

export const PALETTE = [
  "#0072B2",
  "#D55E00",
  "#009E73",
  "#CC79A7",
  "#E69F00",
  "#56B4E9",
  "#000000",
  "#B8A100",
];

export interface ReportOptions extends CompareOptions {
  title?: string;
  /** Log-scaled loss axis (default false). */
  logY?: boolean;
  /** Shown under the title, e.g. an ISO date; omitted when undefined (keeps output reproducible). */
  generatedAt?: string;
  /** Plain-text paragraphs shown above the charts (e.g. the conclusion drawn from the numbers). */
  summary?: readonly string[];
}

const colorOf = (i: number) => PALETTE[i % PALETTE.length];

function lossDomain(runs: readonly RunLog[], c: Comparison, logY: boolean): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  const see = (v: number) => {
    if (logY && v <= 0) return;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  };
  for (const r of runs) {
    for (const p of r.train) see(p.loss);
    for (const p of r.eval) see(p.eval_loss);
  }
  see(c.target.loss);
  if (!Number.isFinite(lo)) return [1e-3, 1];
  if (logY) {
    if (lo === hi) return [lo / 1.5, hi * 1.5];
    // under a decade the log axis gets linear ticks (svg-chart.ts logTicks): end on ticks
    const [niceLo, niceHi] = niceDomain(lo, hi);
    return hi / lo < 10 && niceLo > 0 ? [niceLo, niceHi] : [lo / 1.05, hi * 1.05];
  }
  return niceDomain(lo, hi);
}

function stepDomain(runs: readonly RunLog[]): [number, number] {
  let hi = 1;
  for (const r of runs) {
    hi = Math.max(hi, r.train[r.train.length - 1].step);
    if (r.eval.length > 0) hi = Math.max(hi, r.eval[r.eval.length - 1].step);
  }
  return [0, hi];
}

export const REPORT_CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d1f23; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
.sub { color: #5b6170; margin: 0 0 18px; }
.card { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 12px 16px; margin: 0 0 16px; }
figure { margin: 0; }
.legend { display: flex; flex-wrap: wrap; gap: 8px 22px; align-items: center; }
.legend .run { display: inline-flex; align-items: center; gap: 7px; font-weight: 600; }
.legend .method { color: #5b6170; font-weight: 400; }
.key { color: #5b6170; font-size: 12.5px; margin-top: 8px; display: flex; flex-wrap: wrap; gap: 4px 20px; }
.key span { display: inline-flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12px; background: #fff; }
th, td { padding: 6px 7px; border-bottom: 1px solid #e6e8ee; white-space: nowrap; }
th { background: #f0f2f6; text-align: left; font-weight: 600; color: #333844; white-space: normal; vertical-align: bottom; }
th { min-width: 4.5em; }
td .detail { color: #5b6170; font-size: 11.5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.miss { color: #b0342c; }
tr:last-child td { border-bottom: none; }
.notes { color: #5b6170; font-size: 12.5px; }
.notes li { margin: 2px 0; }
`;

function legend(c: Comparison): string {
  const runs = c.runs
    .map(
      (r, i) =>
        `<span class="run"><span class="swatch" style="background:${colorOf(i)}"></span>${escapeXml(r.name)}${r.method === null ? "" : ` <span class="method">(${escapeXml(r.method)})</span>`}</span>`,
    )
    .join("\n");
  const line = (dash: string, width: number, opacity = 1) =>
    `<svg width="34" height="10" aria-hidden="true"><line x1="1" x2="33" y1="5" y2="5" stroke="#333" stroke-width="${width}" stroke-opacity="${opacity}"${dash === "" ? "" : ` stroke-dasharray="${dash}"`}/></svg>`;
  const key = [
    c.smoothWindow > 1 ? `<span>${line("", 1, 0.4)} loss of each step</span>` : "",
    `<span>${line("", 2.25)} ${c.smoothWindow > 1 ? `centred mean of ${c.smoothWindow} steps` : "training loss"}</span>`,
    `<span>${line("6 4", 2)} evaluation loss (dots: evaluations)</span>`,
    `<span>${line("2 3", 1)} target loss</span>`,
  ].join("");
  return `<div class="card"><div class="legend">${runs}</div><div class="key">${key}</div></div>`;
}

function table(c: Comparison): string {
  const t = comparisonTable(c);
  const th = t.header
    .map((h, j) => `<th${t.numeric.has(j) ? ' class="num"' : ""}>${escapeXml(h)}</th>`)
    .join("");
  const rows = t.rows
    .map((row, i) => {
      const cells = row.map((cell, j) => {
        const cls = [t.numeric.has(j) ? "num" : "", cell === "not reached" ? "miss" : ""]
          .filter((s) => s !== "")
          .join(" ");
        let content = escapeXml(cell);
        if (j === 0)
          content = `<span class="swatch" style="background:${colorOf(i)};width:10px;height:10px;margin-right:7px"></span>${content}`;
        const detail = /^(.*?) \((.*)\)$/.exec(cell);
        if (t.header[j] === "init overhead" && detail !== null) {
          content = `${escapeXml(detail[1])}<br><span class="detail">${escapeXml(detail[2])}</span>`;
        }
        return `<td${cls === "" ? "" : ` class="${cls}"`}>${content}</td>`;
      });
      return `<tr>${cells.join("")}</tr>`;
    })
    .join("\n");
  return `<div class="table-wrap card"><table><thead><tr>${th}</tr></thead><tbody>\n${rows}\n</tbody></table></div>`;
}

/** The whole report page for `runs` (at least one, each with at least one training step). */
export function renderReport(runs: readonly RunLog[], options: ReportOptions = {}): string {
  const c = compareRuns(runs, options);
  const logY = options.logY ?? false;
  const xDomain = stepDomain(runs);
  const yDomain = lossDomain(runs, c, logY);
  const positive = (pts: [number, number][]) => (logY ? pts.filter(([, y]) => y > 0) : pts);
  const trainSeries: Series[] = [];
  runs.forEach((r, i) => {
    const raw = positive(r.train.map((p): [number, number] => [p.step, p.loss]));
    if (c.smoothWindow > 1)
      trainSeries.push({
        label: `${r.name} (each step)`,
        color: colorOf(i),
        style: "raw",
        points: raw,
      });
  });
  runs.forEach((r, i) => {
    const smooth =
      c.smoothWindow > 1
        ? smoothedPoints(r, c.smoothWindow)
        : r.train.map((p): [number, number] => [p.step, p.loss]);
    trainSeries.push({
      label: r.name,
      color: colorOf(i),
      style: "smooth",
      points: positive(smooth),
    });
  });
  const target = [{ y: c.target.loss, label: `target ${formatLoss(c.target.loss)}` }];
  const trainChart = renderChart({
    id: "train",
    title: "Training loss",
    xLabel: "optimizer step",
    yLabel: "loss",
    xDomain,
    yDomain,
    logY,
    series: trainSeries,
    refLines: target,
  });
  const hasEval = runs.some((r) => r.eval.length > 0);
  const evalChart = hasEval
    ? renderChart({
        id: "eval",
        title: "Evaluation loss",
        xLabel: "optimizer step",
        yLabel: "loss",
        xDomain,
        yDomain,
        logY,
        series: runs.map((r, i) => ({
          label: `${r.name} (eval)`,
          color: colorOf(i),
          style: "dashed" as const,
          points: positive(r.eval.map((p): [number, number] => [p.step, p.eval_loss])),
        })),
        refLines: target,
      })
    : `<p class="notes">No evaluation records in these runs.</p>`;
  const title = options.title ?? "loraga: training run comparison";
  const sub = [
    `${runs.length} run${runs.length === 1 ? "" : "s"}`,
    targetCaption(c),
    ...(options.generatedAt === undefined ? [] : [`generated ${options.generatedAt}`]),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${escapeXml(title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<main>
<h1>${escapeXml(title)}</h1>
<p class="sub">${sub.map(escapeXml).join(" &middot; ")}</p>
${(options.summary ?? []).map((p) => `<p class="card">${escapeXml(p)}</p>`).join("\n")}
${legend(c)}
<figure class="card">${trainChart}</figure>
<figure class="card">${evalChart}</figure>
<h2>Summary</h2>
${table(c)}
<ul class="notes">
<li><b>lr</b>: the peak learning rate of the run's schedule (largest logged rate).</li>
<li><b>steps / time to target</b>: first step whose ${c.smoothWindow > 1 ? `mean of the last ${c.smoothWindow} step losses ` : "training loss "}is at or below the target; time is training wall time from the log; <b>${WITH_INIT_HEADER}</b> adds the init overhead, the time a method spends before its first step.</li>
<li><b>init overhead</b>: adapter initialisation (for LoRA-GA: gradient estimation and SVD) before the first step.</li>
<li><b>final train loss</b>: ${c.smoothWindow > 1 ? `mean of the last ${c.smoothWindow} step losses` : "last step loss"}; <b>final eval loss</b> and <b>perplexity</b>: last evaluation. The charts' bold training lines are ${c.smoothWindow > 1 ? `centred means of ${c.smoothWindow} steps (no lag)` : "the step losses"}.</li>
<li><b>tokens/s</b>: training tokens over summed step time; <b>peak memory</b>: engine heap high-water mark.</li>
</ul>
</main>
</body>
</html>
`;
}

function smoothedPoints(r: RunLog, window: number): [number, number][] {
  const smooth = centredMeans(
    r.train.map((p) => p.loss),
    window,
  );
  return r.train.map((p, i): [number, number] => [p.step, smooth[i]]);
}
