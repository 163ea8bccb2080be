// A set of byte ranges [start, end) kept sorted, disjoint and merged: the WebGPU mirror's records
// of which heap bytes the device wrote and the heap has not received yet, and of which the device
// holds as the heap does (mirror.ts). Sets stay small (one entry per run of adjacent tensors), so
// operations are linear scans.

export type Range = readonly [start: number, end: number];

export class RangeSet {
  /** Sorted by start; no two ranges touch or overlap. */
  private ranges: Range[] = [];

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** Every range, in order. */
  all(): readonly Range[] {
    return this.ranges;
  }

  clear(): void {
    this.ranges = [];
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    const kept: Range[] = [];
    let s = start;
    let e = end;
    for (const [rs, re] of this.ranges) {
      if (re < s || rs > e) kept.push([rs, re]);
      else {
        s = Math.min(s, rs);
        e = Math.max(e, re);
      }
    }
    kept.push([s, e]);
    kept.sort((x, y) => x[0] - y[0]);
    this.ranges = kept;
  }

  remove(start: number, end: number): void {
    if (end <= start) return;
    const kept: Range[] = [];
    for (const [rs, re] of this.ranges) {
      if (re <= start || rs >= end) kept.push([rs, re]);
      else {
        if (rs < start) kept.push([rs, start]);
        if (re > end) kept.push([end, re]);
      }
    }
    this.ranges = kept;
  }

  /** The parts of [start, end) inside the set. */
  inside(start: number, end: number): Range[] {
    const out: Range[] = [];
    for (const [rs, re] of this.ranges) {
      const s = Math.max(rs, start);
      const e = Math.min(re, end);
      if (s < e) out.push([s, e]);
    }
    return out;
  }

  /** The parts of [start, end) outside the set. */
  outside(start: number, end: number): Range[] {
    const out: Range[] = [];
    let cursor = start;
    for (const [s, e] of this.inside(start, end)) {
      if (s > cursor) out.push([cursor, s]);
      cursor = e;
    }
    if (cursor < end) out.push([cursor, end]);
    return out;
  }
}
