// Reference kernels on parts of rows: a block of columns copied between two matrices (the parts of
// a fused projection, the rotated part of partial RoPE), and the sliding-window mask on attention
// scores. Both only move or set values, so every engine gives the same bits.

import type { Floats } from "./types.js";

/**
 * out (rows, outCols)[r, outCol + j] = inp (rows, inpCols)[r, inpCol + j] for j < width; the
 * other columns of out keep their values.
 */
export function copyColumns(
  out: Floats,
  outCols: number,
  outCol: number,
  inp: Floats,
  inpCols: number,
  inpCol: number,
  rows: number,
  width: number,
): void {
  for (let r = 0; r < rows; r++) {
    const from = r * inpCols + inpCol;
    out.set(inp.subarray(from, from + width), r * outCols + outCol);
  }
}

/** A raw score far below any real one, finite in f32 after any attention scale up to 1e8. */
const MASKED_SCORE = -1e30;

/**
 * Sliding-window (local) attention's mask on raw scores (M, Tq, Tk): query row i sits at position
 * i + Tk - Tq and sees key j only when j > position - window (transformers'
 * sliding_window_overlay); the scores of the keys before that are set to MASKED_SCORE, the others
 * are untouched (the causal and key-length masks stay the softmax's job). MASKED_SCORE is finite,
 * not -Infinity: a padded query whose window holds only padded keys then gets finite
 * probabilities instead of NaN; such a row's output is never read by a counted position.
 */
export function maskOutsideWindow(
  scores: Floats,
  M: number,
  Tq: number,
  Tk: number,
  window: number,
): void {
  const offset = Tk - Tq;
  for (let i = 0; i < Tq; i++) {
    const hidden = Math.min(Tk, i + offset - window + 1); // keys 0 .. hidden-1 are out of reach
    if (hidden <= 0) continue;
    for (let m = 0; m < M; m++) {
      const row = (m * Tq + i) * Tk;
      scores.fill(MASKED_SCORE, row, row + hidden);
    }
  }
}
