// The SIMD Householder reflector (src/linalg/reflector-wasm.ts) against the TypeScript QR of
// qr.ts, which test/linalg/qr.test.ts checks against its definition: orthonormalizeColumnsInPlace
// (which takes the SIMD path at these sizes) must give the TypeScript Q up to rounding, an
// orthonormal Q, and no NaN on rank-deficient input (repeated and zero columns).

import { describe, expect, test } from "vitest";
import {
  formQInPlace,
  householderInPlace,
  orthonormalizeColumnsInPlace,
} from "../../src/linalg/qr.js";
import { wasmReflectors } from "../../src/linalg/reflector-wasm.js";
import { randomUniform } from "../helpers/random.js";

/** Q by the TypeScript steps alone (the default applyReflector). */
function tsQ(cols: Float64Array, m: number, k: number): Float64Array {
  const q = cols.slice();
  const tau = new Float64Array(k);
  householderInPlace(q, m, k, tau);
  formQInPlace(q, m, k, tau);
  return q;
}

function maxOffOrthonormal(q: Float64Array, m: number, k: number): number {
  let worst = 0;
  for (let a = 0; a < k; a++) {
    for (let b = 0; b <= a; b++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += q[a * m + i] * q[b * m + i];
      worst = Math.max(worst, Math.abs(s - (a === b ? 1 : 0)));
    }
  }
  return worst;
}

describe("SIMD Householder reflector", () => {
  test("this runtime builds it", () => {
    expect(wasmReflectors()).not.toBeNull();
  });

  const shapes = [
    { m: 1376, k: 32 }, // a LoRA-GA basis (q = 4r, r = 8)
    { m: 513, k: 33 }, // odd rows: the last row of each pass goes alone; k % 4 = 1
    { m: 4097, k: 2 },
    { m: 300, k: 30 },
  ];
  test.each(shapes)("matches the TypeScript QR: ($m, $k)", ({ m, k }) => {
    const cols = Float64Array.from(randomUniform(m * k, m + k, 1));
    const want = tsQ(cols, m, k);
    const got = cols.slice();
    orthonormalizeColumnsInPlace(got, m, k);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(worst).toBeLessThan(1e-12);
    expect(maxOffOrthonormal(got, m, k)).toBeLessThan(1e-12);
  });

  // Past a dependent column the basis is made of rounding residue, which the two summation orders
  // round differently: there only orthonormality and the span of the input are defined.
  test("rank-deficient columns: no NaN, orthonormal, spans the input, TypeScript's first columns", () => {
    const m = 700;
    const k = 12;
    const cols = Float64Array.from(randomUniform(m * k, 9, 1));
    cols.copyWithin(3 * m, 1 * m, 2 * m); // column 3 = column 1
    cols.fill(0, 5 * m, 6 * m); // column 5 = 0
    cols.copyWithin(8 * m, 0, m); // column 8 = column 0
    const want = tsQ(cols, m, k);
    const got = cols.slice();
    orthonormalizeColumnsInPlace(got, m, k);
    expect(got.every(Number.isFinite)).toBe(true);
    let worst = 0;
    for (let i = 0; i < 3 * m; i++) worst = Math.max(worst, Math.abs(got[i] - want[i])); // columns 0-2
    expect(worst).toBeLessThan(1e-12);
    expect(maxOffOrthonormal(got, m, k)).toBeLessThan(1e-12);
    // every input column lies in span(Q): a - Q Q^T a = 0
    let residual = 0;
    for (let c = 0; c < k; c++) {
      const a = cols.subarray(c * m, (c + 1) * m);
      const r = Float64Array.from(a);
      for (let q = 0; q < k; q++) {
        let dot = 0;
        for (let i = 0; i < m; i++) dot += got[q * m + i] * a[i];
        for (let i = 0; i < m; i++) r[i] -= dot * got[q * m + i];
      }
      for (let i = 0; i < m; i++) residual = Math.max(residual, Math.abs(r[i]));
    }
    expect(residual).toBeLessThan(1e-12);
  });
});
