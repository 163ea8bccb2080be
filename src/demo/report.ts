// The demo's HTML report: one self-contained page (the comparison report's style, no script) with
// the conclusion paragraphs, then per protocol a training-loss chart (per method the mean over
// seeds of each seed's centred-mean loss, with a band from the lowest to the highest seed, on a
// log axis, the target as a dotted line) and a table of mean ± spread for every figure.

import { PALETTE, REPORT_CSS } from "../report/html.js";
import { centredMeans, DEFAULT_SMOOTH_WINDOW } from "../report/stats.js";
import { type Band, escapeXml, niceDomain, renderChart, type Series } from "../report/svg-chart.js";
import { formatLr } from "../report/table.js";
import {
  formatPercentStat,
  formatStat,
  type MethodSummary,
  type ProtocolSummary,
} from "./summary.js";

interface DemoReportProtocol {
  summary: ProtocolSummary;
  /** One line: how the rates were chosen. */
  description: string;
}

export interface DemoReport {
  title: string;
  /** Settings and timing, one line. */
  subtitle: string;
  conclusion: readonly string[];
  protocols: readonly DemoReportProtocol[];
}

const colorOf = (i: number) => PALETTE[i % PALETTE.length];

/** Per step: the mean, lowest and highest over the seeds' centred-mean losses. */
function seedCurves(m: MethodSummary): { mean: [number, number][]; band: Band["lower"][] } {
  const curves = m.runs.map((r) =>
    centredMeans(
      r.log.train.map((p) => p.loss),
      DEFAULT_SMOOTH_WINDOW,
    ),
  );
  const steps = m.runs[0].log.train.map((p) => p.step);
  const len = Math.min(...curves.map((c) => c.length));
  const mean: [number, number][] = [];
  const lo: [number, number][] = [];
  const hi: [number, number][] = [];
  for (let i = 0; i < len; i++) {
    const ys = curves.map((c) => c[i]);
    mean.push([steps[i], ys.reduce((a, b) => a + b, 0) / ys.length]);
    lo.push([steps[i], Math.min(...ys)]);
    hi.push([steps[i], Math.max(...ys)]);
  }
  return { mean, band: [lo, hi] };
}

function chart(id: string, p: ProtocolSummary): string {
  const curves = p.methods.map(seedCurves);
  let lo = Infinity;
  let hi = -Infinity;
  for (const c of curves)
    for (const side of c.band)
      for (const [, y] of side) {
        if (y > 0) lo = Math.min(lo, y);
        hi = Math.max(hi, y);
      }
  const [niceLo, niceHi] = niceDomain(lo, hi);
  const yDomain: [number, number] =
    hi / lo < 10 && niceLo > 0 ? [niceLo, niceHi] : [lo / 1.05, hi * 1.05];
  const series: Series[] = curves.map((c, i) => ({
    label: p.methods[i].method,
    color: colorOf(i),
    style: "smooth",
    points: c.mean,
  }));
  const bands: Band[] = curves.map((c, i) => ({
    color: colorOf(i),
    lower: c.band[0],
    upper: c.band[1],
  }));
  return renderChart({
    id,
    title: "Training loss (mean over seeds; band: lowest to highest seed)",
    xLabel: "optimizer step",
    yLabel: "loss",
    xDomain: [0, p.steps],
    yDomain,
    logY: true,
    series,
    bands,
    refLines: [{ y: p.target, label: `LoRA's final loss ${p.target.toFixed(4)}` }],
  });
}

const HEADER = [
  "method",
  "lr",
  "init overhead (s)",
  "steps to LoRA's final loss",
  "final train loss",
  "held-out loss",
  "exact match",
  "training time (s)",
];

/** The protocol's table as rows of text (shared with the terminal output). */
function protocolRows(p: ProtocolSummary): string[][] {
  return p.methods.map((m) => [
    m.method,
    formatLr(m.lr),
    formatStat(m.initSeconds, 1),
    m.reachedCount === 0
      ? "not reached"
      : `${formatStat(m.stepsToTarget, 0)} (${m.reachedCount}/${m.runs.length} seeds)`,
    formatStat(m.finalLoss, 4),
    formatStat(m.heldOutLoss, 4),
    formatPercentStat(m.exactMatch),
    formatStat(m.trainSeconds, 0),
  ]);
}

/** Fixed-width text of a protocol's table. */
export function protocolText(p: ProtocolSummary): string {
  const all = [HEADER, ...protocolRows(p)];
  const widths = HEADER.map((_, j) => Math.max(...all.map((r) => r[j].length)));
  const line = (r: string[]) =>
    r
      .map((c, j) => (j === 0 ? c.padEnd(widths[j]) : c.padStart(widths[j])))
      .join("  ")
      .trimEnd();
  return [line(HEADER), widths.map((w) => "-".repeat(w)).join("  "), ...all.slice(1).map(line)]
    .map((l) => `${l}\n`)
    .join("");
}

function table(p: ProtocolSummary): string {
  const th = HEADER.map((h, j) => `<th${j === 0 ? "" : ' class="num"'}>${escapeXml(h)}</th>`);
  const rows = protocolRows(p).map(
    (r, i) =>
      `<tr>${r
        .map((c, j) =>
          j === 0
            ? `<td><span class="swatch" style="background:${colorOf(i)};width:10px;height:10px;margin-right:7px"></span>${escapeXml(c)}</td>`
            : `<td class="num${c === "not reached" ? " miss" : ""}">${escapeXml(c)}</td>`,
        )
        .join("")}</tr>`,
  );
  return `<div class="table-wrap card"><table><thead><tr>${th.join("")}</tr></thead><tbody>\n${rows.join("\n")}\n</tbody></table></div>`;
}

export function renderDemoReport(r: DemoReport): string {
  const sections = r.protocols.map(
    (p, i) => `<h2>${escapeXml(p.summary.name)}</h2>
<p class="sub">${escapeXml(p.description)}</p>
<figure class="card">${chart(`protocol-${i}`, p.summary)}</figure>
${table(p.summary)}`,
  );
  const w = DEFAULT_SMOOTH_WINDOW;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${escapeXml(r.title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<main>
<h1>${escapeXml(r.title)}</h1>
<p class="sub">${escapeXml(r.subtitle)}</p>
<h2>Conclusion</h2>
${r.conclusion.map((c) => `<p class="card">${escapeXml(c)}</p>`).join("\n")}
${sections.join("\n")}
<h2>How to read the tables</h2>
<ul class="notes">
<li>Every figure is <b>mean ± standard deviation over the seeds</b> (each seed: its own adapter init and data order; the task's data are the same).</li>
<li><b>lr</b>: the peak learning rate of the run's schedule (cosine with warmup).</li>
<li><b>init overhead</b>: time spent before the first step (LoRA-GA and LoRA-One: gradient estimation and SVD; PiSSA: SVD).</li>
<li><b>steps to LoRA's final loss</b>: first step whose mean of the last ${w} step losses is at or below default LoRA's final training loss (averaged over its seeds), over the seeds that reached it.</li>
<li><b>final train loss</b>: mean of the last ${w} step losses; <b>held-out loss</b>: loss on the held-out problems after the last step; <b>exact match</b>: share of held-out problems whose generated final number (after "####") is right, greedy decoding.</li>
<li>Lines are centred means of ${w} steps (no lag); per-run logs are in the run directories.</li>
</ul>
</main>
</body>
</html>
`;
}
