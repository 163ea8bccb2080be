// Static line charts as inline SVG strings (no script, no external assets): axes with "nice" tick
// values (1-2-5 steps, Heckbert, "Nice numbers for graph labels", Graphics Gems 1990), an optional
// log10 y axis, horizontal reference lines, translucent bands (a range around a line, e.g. the
// spread over seeds), and series drawn as raw (thin, translucent), smoothed (thick) or
// dashed-with-markers lines. Every text is XML-escaped here; callers pass plain strings.

export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

type SeriesStyle = "raw" | "smooth" | "dashed";

export interface Series {
  label: string;
  color: string;
  style: SeriesStyle;
  points: readonly (readonly [number, number])[];
}

export interface Band {
  color: string;
  lower: readonly (readonly [number, number])[];
  upper: readonly (readonly [number, number])[];
}

export interface ChartSpec {
  /** Unique within the page (letters, digits, "-"): names the chart's clip path. */
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  xDomain: readonly [number, number];
  yDomain: readonly [number, number];
  logY: boolean;
  series: readonly Series[];
  refLines?: readonly { y: number; label: string }[];
  /** Filled ranges drawn under the series: lower[i] and upper[i] share an x. */
  bands?: readonly Band[];
  width?: number;
  height?: number;
}

/** Most points drawn per series; longer series are sampled at an even stride (last point kept). */
const MAX_DRAWN_POINTS = 2000;

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/** [lo, hi] widened outwards to whole multiples of a nice step (the first and last tick). */
export function niceDomain(lo: number, hi: number, count = 6): [number, number] {
  if (!(hi > lo)) return [lo - 0.5, hi + 0.5];
  const step = niceStep(hi - lo, count);
  return [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step];
}

/** Tick values covering [lo, hi] at a nice step, about `count` of them. */
export function linearTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, count);
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/**
 * Ticks for a log axis over [lo, hi] (lo > 0): 1, 2, 5 x 10^k when that gives at least 4; else
 * (less than about a decade) linear nice ticks, which stay readable on a short log axis.
 */
export function logTicks(lo: number, hi: number): number[] {
  const pick = (mults: number[]) => {
    const out: number[] = [];
    for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
      for (const m of mults) {
        const v = Number((m * 10 ** k).toPrecision(12));
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
      }
    }
    return out;
  };
  const coarse = pick([1, 2, 5]);
  return coarse.length >= 4 ? coarse : linearTicks(lo, hi);
}

function formatTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

function sample<T>(points: readonly T[]): readonly T[] {
  if (points.length <= MAX_DRAWN_POINTS) return points;
  const stride = Math.ceil(points.length / MAX_DRAWN_POINTS);
  const out = points.filter((_, i) => i % stride === 0);
  if ((points.length - 1) % stride !== 0) out.push(points[points.length - 1]);
  return out;
}

const STYLE: Record<SeriesStyle, string> = {
  raw: 'stroke-width="1" stroke-opacity="0.35"',
  smooth: 'stroke-width="2.25"',
  dashed: 'stroke-width="2" stroke-dasharray="6 4"',
};

export function renderChart(spec: ChartSpec): string {
  const W = spec.width ?? 1080;
  const H = spec.height ?? 400;
  const m = { left: 72, right: 24, top: 40, bottom: 52 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const [x0, x1] = spec.xDomain;
  const [y0, y1] = spec.yDomain;
  if (spec.logY && !(y0 > 0))
    throw new Error(`chart "${spec.title}": a log axis needs positive values, lowest is ${y0}`);
  const fy = spec.logY ? Math.log10 : (v: number) => v;
  const sx = (x: number) => m.left + (x1 === x0 ? pw / 2 : ((x - x0) / (x1 - x0)) * pw);
  const sy = (y: number) =>
    m.top + ph - (fy(y1) === fy(y0) ? ph / 2 : ((fy(y) - fy(y0)) / (fy(y1) - fy(y0))) * ph);
  const n = (v: number) => v.toFixed(1);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${escapeXml(spec.title)}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">`,
  );
  parts.push(
    `<text x="${m.left}" y="24" font-size="15" font-weight="600" fill="#222">${escapeXml(spec.title)}</text>`,
  );
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="#fff" stroke="#c8c8c8"/>`,
  );
  const yTicks = (spec.logY ? logTicks(y0, y1) : linearTicks(y0, y1)).filter(
    (v) => v >= y0 - 1e-12 && v <= y1 + 1e-12,
  );
  for (const v of yTicks) {
    const y = n(sy(v));
    parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="#ececec"/>`);
    parts.push(
      `<text x="${m.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555">${escapeXml(formatTick(v))}</text>`,
    );
  }
  for (const v of linearTicks(x0, x1, 8).filter((t) => t >= x0 && t <= x1)) {
    const x = n(sx(v));
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + ph}" stroke="#f2f2f2"/>`);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#888"/>`,
    );
    parts.push(
      `<text x="${x}" y="${m.top + ph + 18}" text-anchor="middle" fill="#555">${escapeXml(formatTick(v))}</text>`,
    );
  }
  parts.push(
    `<text x="${m.left + pw / 2}" y="${H - 10}" text-anchor="middle" fill="#333">${escapeXml(spec.xLabel)}</text>`,
  );
  parts.push(
    `<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">${escapeXml(spec.yLabel + (spec.logY ? " (log scale)" : ""))}</text>`,
  );
  for (const ref of spec.refLines ?? []) {
    if (ref.y < y0 || ref.y > y1) continue;
    const y = n(sy(ref.y));
    parts.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="#444" stroke-width="1" stroke-dasharray="2 3"/>`,
    );
    // left end: loss curves start high, so the label rarely sits on a curve there
    parts.push(
      `<text x="${m.left + 8}" y="${n(sy(ref.y) - 6)}" fill="#444" paint-order="stroke" stroke="#fff" stroke-width="3">${escapeXml(ref.label)}</text>`,
    );
  }
  const clipId = `clip-${spec.id.replace(/[^A-Za-z0-9-]/g, "")}`;
  parts.push(
    `<clipPath id="${clipId}"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath>`,
  );
  for (const b of spec.bands ?? []) {
    const outline = [...sample(b.upper), ...[...sample(b.lower)].reverse()];
    if (outline.length === 0) continue;
    const d = outline.map(([x, y], i) => `${i === 0 ? "M" : "L"}${n(sx(x))} ${n(sy(y))}`).join("");
    parts.push(
      `<path class="band" clip-path="url(#${clipId})" d="${d}Z" fill="${b.color}" fill-opacity="0.18" stroke="none"/>`,
    );
  }
  parts.push(`<g clip-path="url(#${clipId})" fill="none">`);
  for (const s of spec.series) {
    const pts = sample(s.points);
    if (pts.length === 0) continue;
    const d = pts.map(([x, y], i) => `${i === 0 ? "M" : "L"}${n(sx(x))} ${n(sy(y))}`).join("");
    parts.push(
      `<path class="series" data-series="${escapeXml(s.label)}" d="${d}" stroke="${s.color}" ${STYLE[s.style]} stroke-linejoin="round"><title>${escapeXml(s.label)}</title></path>`,
    );
    if (s.style === "dashed") {
      for (const [x, y] of pts) {
        parts.push(
          `<circle cx="${n(sx(x))}" cy="${n(sy(y))}" r="3.5" fill="${s.color}" stroke="#fff" stroke-width="1"><title>${escapeXml(`${s.label}: step ${x}, ${formatTick(y)}`)}</title></circle>`,
        );
      }
    }
  }
  parts.push("</g></svg>");
  return parts.join("\n");
}
