// expectAllclose: numeric comparison for tests, |actual - expected| <= atol + rtol * |expected|
// elementwise (numpy.allclose's rule). NaN matches NaN only at the same index; infinities must
// match exactly. On failure it throws with the max abs/rel difference and the first offending
// indices, so a failing kernel test says where and by how much. expectGemmClose: a GEMM's
// output against the reference, with a tolerance that grows with the sum's length.

export interface AllcloseOptions {
  rtol?: number;
  atol?: number;
  label?: string;
  /** How many offending indices to print (default 8). */
  show?: number;
}

type Numbers = ArrayLike<number>;

export interface AllcloseReport {
  ok: boolean;
  maxAbs: number;
  maxRel: number;
  bad: number[];
  badCount: number;
}

export function allclose(
  actual: Numbers,
  expected: Numbers,
  options: AllcloseOptions = {},
): AllcloseReport {
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  const show = options.show ?? 8;
  let maxAbs = 0;
  let maxRel = 0;
  const bad: number[] = [];
  let badCount = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    let ok: boolean;
    if (Number.isNaN(e) || Number.isNaN(a)) ok = Number.isNaN(e) && Number.isNaN(a);
    else if (!Number.isFinite(e) || !Number.isFinite(a)) ok = a === e;
    else {
      const diff = Math.abs(a - e);
      maxAbs = Math.max(maxAbs, diff);
      if (e !== 0) maxRel = Math.max(maxRel, diff / Math.abs(e));
      ok = diff <= atol + rtol * Math.abs(e);
    }
    if (!ok) {
      badCount++;
      if (bad.length < show) bad.push(i);
    }
  }
  return { ok: badCount === 0 && actual.length === expected.length, maxAbs, maxRel, bad, badCount };
}

export function expectAllclose(
  actual: Numbers,
  expected: Numbers,
  options: AllcloseOptions = {},
): void {
  const label = options.label ?? "values";
  if (actual.length !== expected.length) {
    throw new Error(
      `${label}: length ${actual.length} differs from expected length ${expected.length}`,
    );
  }
  const r = allclose(actual, expected, options);
  if (r.ok) return;
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  const firsts = r.bad
    .map((i) => `  [${i}] actual ${actual[i]} expected ${expected[i]}`)
    .join("\n");
  throw new Error(
    `${label}: ${r.badCount} of ${expected.length} elements differ (rtol ${rtol}, atol ${atol}); ` +
      `max abs diff ${r.maxAbs.toExponential(3)}, max rel diff ${r.maxRel.toExponential(3)}\n${firsts}`,
  );
}

/**
 * max |actual - expected| / max |expected| over the elements: one relative error for a whole
 * tensor, scaled by its largest value. NaN anywhere, or an all-zero `expected`, gives NaN or
 * Infinity, which no bound accepts.
 */
export function maxRelDiff(actual: Numbers, expected: Numbers): number {
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    ref = Math.max(ref, Math.abs(expected[i]));
  }
  return diff / ref;
}

/** |got - want| <= 1e-5 sqrt(K + 1) max(1, |want|) everywhere (f32 sums over K terms, in
 * another order than the reference's); NaN never passes. */
export function expectGemmClose(got: Numbers, want: Numbers, k: number, label = "gemm"): void {
  let bad = 0;
  let first = -1;
  for (let i = 0; i < want.length; i++) {
    const tol = 1e-5 * Math.sqrt(k + 1) * Math.max(1, Math.abs(want[i]));
    if (!(Math.abs(got[i] - want[i]) <= tol)) {
      bad++;
      if (first < 0) first = i;
    }
  }
  if (bad > 0)
    throw new Error(
      `${label}: ${bad} bad, first at ${first}: got ${got[first]}, want ${want[first]}`,
    );
}
