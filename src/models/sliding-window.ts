// Sliding-window (local) attention: the mask of layers whose queries see only their last
// `window` keys (Gemma 3's sliding_attention layers). transformers' sliding_window_overlay keeps
// key j for the query at position p when j > p - window (itself and the window - 1 keys before
// it), on top of the causal mask.
//
// Contract: applied to raw scores before attentionSoftmax, it sets the scores of the keys outside
// each query's window to MASKED_SCORE, which the softmax turns into (near) zero probabilities;
// keys inside the window are untouched, so the causal and key-length masks stay the softmax's job.
// MASKED_SCORE is finite (not -Infinity): a padded query whose window holds only padded keys
// (masked by key length) then gets finite probabilities instead of NaN (-Infinity minus a
// -Infinity maximum); such a row's output is never read by a counted position.

import type { Tensor } from "../tensor/tensor.js";

/** A raw score far below any real one, finite in f32 after any attention scale up to 1e8. */
const MASKED_SCORE = -1e30;

/**
 * scores (M, Tq, Tk): M independent (query, key) matrices; query row i sits at position
 * i + Tk - Tq (a block of new queries at the end of the keys, as in KV-cache decoding).
 */
export function maskOutsideWindow(scores: Tensor, window: number): void {
  const [M, Tq, Tk] = scores.shape;
  if (scores.shape.length !== 3)
    throw new Error(`maskOutsideWindow: scores must be (M, Tq, Tk), got ${scores.shape.length}-D`);
  const data = scores.f32();
  const offset = Tk - Tq;
  for (let i = 0; i < Tq; i++) {
    const hidden = Math.min(Tk, i + offset - window + 1); // keys 0 .. hidden-1 are out of reach
    if (hidden <= 0) continue;
    for (let m = 0; m < M; m++) {
      const row = (m * Tq + i) * Tk;
      data.fill(MASKED_SCORE, row, row + hidden);
    }
  }
}
