// Reference RMSNorm (Llama) and LayerNorm (torch.nn.LayerNorm, biased variance) with backwards.
// Forward overwrites out and the per-row statistics it saves for the backward; backward
// accumulates into dInp, dWeight and dBias (the last two may be null when frozen), except that
// dInp is overwritten (not read) when `accumulate` is false; dWeight and dBias always accumulate.
// Row statistics are computed in float64.
//
// Legend: R rows (flattened leading dims), C channels. inp/out/dOut/dInp (R, C); weight, bias,
// dWeight, dBias (C); mean, rstd (R).
//
// Backward formulas (derivation as in llm.c doc/layernorm/layernorm.md):
// - RMSNorm: y = x r w, r = (mean(x^2) + eps)^-1/2.
//   dx_i = r (w_i dy_i) - r^3 x_i mean_j(w_j dy_j x_j);  dw_i += dy_i x_i r.
// - LayerNorm: n = (x - mu) r, y = n w + b, r = (var(x) + eps)^-1/2.
//   dx_i = r (g_i - mean_j g_j - n_i mean_j(g_j n_j)) with g = w dy;  dw += dy n;  db += dy.

import type { Floats } from "./types.js";

export function rmsnorm(
  out: Floats,
  rstd: Floats,
  inp: Floats,
  weight: Floats,
  eps: number,
  rows: number,
  cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += inp[row + c] * inp[row + c];
    const s = 1 / Math.sqrt(ss / cols + eps);
    for (let c = 0; c < cols; c++) out[row + c] = inp[row + c] * s * weight[c];
    rstd[r] = s;
  }
}

export function rmsnormBackward(
  dInp: Floats,
  dWeight: Floats | null,
  dOut: Floats,
  inp: Floats,
  weight: Floats,
  rstd: Floats,
  rows: number,
  cols: number,
  accumulate = true,
): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    const s = rstd[r];
    let dot = 0; // sum_j w_j dy_j x_j
    for (let c = 0; c < cols; c++) dot += weight[c] * dOut[row + c] * inp[row + c];
    const coef = (s * s * s * dot) / cols;
    for (let c = 0; c < cols; c++) {
      const d = s * weight[c] * dOut[row + c] - coef * inp[row + c];
      dInp[row + c] = accumulate ? dInp[row + c] + d : d;
    }
    if (dWeight !== null) {
      for (let c = 0; c < cols; c++) dWeight[c] += dOut[row + c] * inp[row + c] * s;
    }
  }
}

export function layernorm(
  out: Floats,
  mean: Floats,
  rstd: Floats,
  inp: Floats,
  weight: Floats,
  bias: Floats,
  eps: number,
  rows: number,
  cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += inp[row + c];
    const mu = sum / cols;
    let sq = 0;
    for (let c = 0; c < cols; c++) {
      const d = inp[row + c] - mu;
      sq += d * d;
    }
    const s = 1 / Math.sqrt(sq / cols + eps);
    for (let c = 0; c < cols; c++) out[row + c] = (inp[row + c] - mu) * s * weight[c] + bias[c];
    mean[r] = mu;
    rstd[r] = s;
  }
}

export function layernormBackward(
  dInp: Floats,
  dWeight: Floats | null,
  dBias: Floats | null,
  dOut: Floats,
  inp: Floats,
  weight: Floats,
  mean: Floats,
  rstd: Floats,
  rows: number,
  cols: number,
  accumulate = true,
): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    const mu = mean[r];
    const s = rstd[r];
    let gMean = 0; // mean_j g_j, g = w dy
    let gnMean = 0; // mean_j g_j n_j
    for (let c = 0; c < cols; c++) {
      const g = weight[c] * dOut[row + c];
      gMean += g;
      gnMean += g * (inp[row + c] - mu) * s;
    }
    gMean /= cols;
    gnMean /= cols;
    for (let c = 0; c < cols; c++) {
      const n = (inp[row + c] - mu) * s;
      const g = weight[c] * dOut[row + c];
      const d = s * (g - gMean - n * gnMean);
      dInp[row + c] = accumulate ? dInp[row + c] + d : d;
      if (dWeight !== null) dWeight[c] += dOut[row + c] * n;
      if (dBias !== null) dBias[c] += dOut[row + c];
    }
  }
}
