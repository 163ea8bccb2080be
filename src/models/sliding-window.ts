// Sliding-window (local) attention: the mask of layers whose queries see only their last
// `window` keys (Gemma 3's sliding_attention layers). transformers' sliding_window_overlay keeps
// key j for the query at position p when j > p - window (itself and the window - 1 keys before
// it), on top of the causal mask.
//
// Contract: applied to raw scores before attentionSoftmax, it sets the scores of the keys outside
// each query's window to -Infinity, which the softmax turns into (near) zero probabilities; keys
// inside the window are untouched, so the causal and key-length masks stay the softmax's job.

import type { Tensor } from "../tensor/tensor.js";

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
      data.fill(Number.NEGATIVE_INFINITY, row, row + hidden);
    }
  }
}
