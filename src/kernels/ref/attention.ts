// Reference attention softmax (scale, causal mask with KV offset, right-padding key lengths) and
// its backward. Forward overwrites probs (which may alias scores); backward accumulates dScores
// (overwrites it, without reading it, when `accumulate` is false).
//
// Legend: B batch, H heads, Tq queries, Tk keys; scores, probs, dProbs, dScores (B, H, Tq, Tk);
// keyLengths (B) or null.
//
// Mask: query row i sees key j when (not causal or j <= i + Tk - Tq) and j < keyLengths[b].
// keyLengths values outside [0, Tk] are clamped to it. A row that sees no key gets all-zero
// probabilities (instead of NaN).
// Backward: softmax Jacobian, d(scale*s)_j = p_j (dp_j - sum_k p_k dp_k), times scale for s.
// Masked entries have p = 0 and so receive no gradient.

import type { Floats } from "./types.js";

export interface AttentionDims {
  batch: number;
  heads: number;
  tq: number;
  tk: number;
}

export function attentionSoftmax(
  probs: Floats,
  scores: Floats,
  dims: AttentionDims,
  scale: number,
  causal: boolean,
  keyLengths: Int32Array | null,
): void {
  const { batch, heads, tq, tk } = dims;
  const offset = tk - tq;
  for (let b = 0; b < batch; b++) {
    const keyLimit = keyLengths === null ? tk : Math.max(0, Math.min(tk, keyLengths[b]));
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < tq; i++) {
        const row = ((b * heads + h) * tq + i) * tk;
        // visible keys are j < visible
        const visible = causal ? Math.max(0, Math.min(keyLimit, i + offset + 1)) : keyLimit;
        let max = -Infinity;
        for (let j = 0; j < visible; j++) {
          const v = scale * scores[row + j];
          if (v > max) max = v;
        }
        let sum = 0;
        for (let j = 0; j < visible; j++) {
          const e = Math.exp(scale * scores[row + j] - max);
          probs[row + j] = e;
          sum += e;
        }
        const inv = visible > 0 ? 1 / sum : 0;
        for (let j = 0; j < visible; j++) probs[row + j] *= inv;
        for (let j = visible; j < tk; j++) probs[row + j] = 0;
      }
    }
  }
}

/** dScores += (= when !accumulate) scale * probs * (dProbs - rowsum(probs * dProbs)), rows of `cols`. */
export function attentionSoftmaxBackward(
  dScores: Floats,
  probs: Floats,
  dProbs: Floats,
  scale: number,
  rows: number,
  cols: number,
  accumulate = true,
): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += probs[row + j] * dProbs[row + j];
    for (let j = 0; j < cols; j++) {
      const d = scale * probs[row + j] * (dProbs[row + j] - dot);
      dScores[row + j] = accumulate ? dScores[row + j] + d : d;
    }
  }
}
