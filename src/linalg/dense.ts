// Small dense float64 kernels on column-major matrices, shared by the SVD code.
// Column-major (rows, cols): column c occupies [c * rows, (c + 1) * rows).

/**
 * out (rows, kOut) = a (rows, k) * w (k, kOut), all column-major. Register-blocked 4 x 4: each
 * pass over the rows reads four columns of `a` and updates four columns of `out`.
 */
export function multiplyColumns(
  a: Float64Array,
  rows: number,
  k: number,
  w: Float64Array,
  kOut: number,
): Float64Array {
  const out = new Float64Array(rows * kOut); // (rows, kOut)
  let j = 0;
  for (; j + 4 <= kOut; j += 4) {
    const u0 = j * rows;
    const u1 = u0 + rows;
    const u2 = u1 + rows;
    const u3 = u2 + rows;
    let i = 0;
    for (; i + 4 <= k; i += 4) {
      const a0 = i * rows;
      const a1 = a0 + rows;
      const a2 = a1 + rows;
      const a3 = a2 + rows;
      const w00 = w[j * k + i];
      const w10 = w[j * k + i + 1];
      const w20 = w[j * k + i + 2];
      const w30 = w[j * k + i + 3];
      const w01 = w[(j + 1) * k + i];
      const w11 = w[(j + 1) * k + i + 1];
      const w21 = w[(j + 1) * k + i + 2];
      const w31 = w[(j + 1) * k + i + 3];
      const w02 = w[(j + 2) * k + i];
      const w12 = w[(j + 2) * k + i + 1];
      const w22 = w[(j + 2) * k + i + 2];
      const w32 = w[(j + 2) * k + i + 3];
      const w03 = w[(j + 3) * k + i];
      const w13 = w[(j + 3) * k + i + 1];
      const w23 = w[(j + 3) * k + i + 2];
      const w33 = w[(j + 3) * k + i + 3];
      for (let r = 0; r < rows; r++) {
        const x0 = a[a0 + r];
        const x1 = a[a1 + r];
        const x2 = a[a2 + r];
        const x3 = a[a3 + r];
        out[u0 + r] += x0 * w00 + x1 * w10 + x2 * w20 + x3 * w30;
        out[u1 + r] += x0 * w01 + x1 * w11 + x2 * w21 + x3 * w31;
        out[u2 + r] += x0 * w02 + x1 * w12 + x2 * w22 + x3 * w32;
        out[u3 + r] += x0 * w03 + x1 * w13 + x2 * w23 + x3 * w33;
      }
    }
    for (; i < k; i++) {
      const ai = i * rows;
      const f0 = w[j * k + i];
      const f1 = w[(j + 1) * k + i];
      const f2 = w[(j + 2) * k + i];
      const f3 = w[(j + 3) * k + i];
      for (let r = 0; r < rows; r++) {
        const x = a[ai + r];
        out[u0 + r] += x * f0;
        out[u1 + r] += x * f1;
        out[u2 + r] += x * f2;
        out[u3 + r] += x * f3;
      }
    }
  }
  for (; j < kOut; j++) {
    const uj = j * rows;
    for (let i = 0; i < k; i++) {
      const f = w[j * k + i];
      if (f === 0) continue;
      const ai = i * rows;
      for (let r = 0; r < rows; r++) out[uj + r] += f * a[ai + r];
    }
  }
  return out;
}
