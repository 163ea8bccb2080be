// The live loss chart: the training loss of each run per step, drawn with the report's SVG chart
// (src/report/svg-chart.ts, which escapes every text), redrawn as steps arrive, with a legend.

import { niceDomain, renderChart, type Series } from "../../../src/report/svg-chart.js";
import { h } from "./dom.js";

const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df"];

export class LossChart {
  private readonly series = new Map<string, [number, number][]>();
  private readonly host: HTMLElement;
  /** The x axis' extent: the run's planned steps. */
  private readonly steps: () => number;

  constructor(host: HTMLElement, steps: () => number) {
    this.host = host;
    this.steps = steps;
  }

  clear(): void {
    this.series.clear();
    this.draw();
  }

  add(run: string, step: number, loss: number): void {
    let points = this.series.get(run);
    if (points === undefined) {
      points = [];
      this.series.set(run, points);
    }
    points.push([step, loss]);
    this.draw();
  }

  private draw(): void {
    const all = [...this.series.values()].flat();
    if (all.length === 0) {
      this.host.replaceChildren();
      return;
    }
    const losses = all.map(([, l]) => l);
    const lo = Math.min(...losses);
    const hi = Math.max(...losses);
    const series: Series[] = [...this.series].map(([label, points], i) => ({
      label,
      color: COLORS[i % COLORS.length],
      style: "smooth",
      points,
    }));
    this.host.innerHTML = renderChart({
      id: "loss",
      title: "training loss",
      xLabel: "step",
      yLabel: "loss",
      xDomain: [0, Math.max(this.steps(), ...all.map(([s]) => s))],
      yDomain: lo === hi ? [lo * 0.9, hi * 1.1 + 1e-6] : niceDomain(lo, hi),
      logY: false,
      series,
      width: 720,
      height: 320,
    });
    this.host.append(
      h(
        "figcaption",
        { class: "legend" },
        ...series.map((s) =>
          h("span", {}, h("span", { class: "swatch", style: `background:${s.color}` }), s.label),
        ),
      ),
    );
  }
}
