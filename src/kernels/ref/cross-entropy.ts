// Reference fused softmax cross-entropy (torch.nn.functional.cross_entropy, reduction "none",
// with ignore_index), numerically stable: loss = logsumexp(logits) - logits[target], computed
// with the row max subtracted, in float64. Optionally overwrites dLogits with
// (softmax - onehot(target)) * gradScale, zero rows where the target is ignored. dLogits may be
// logits itself: each element is read before it is written.
//
// Legend: N rows, V vocabulary; logits/dLogits (N, V), targets (N), losses (N).
// Targets are checked first: a target outside [0, V) other than ignoreIndex throws and nothing
// is written.

import type { Floats } from "./types.js";

export function crossEntropy(
  losses: Floats,
  dLogits: Floats | null,
  logits: Floats,
  targets: Int32Array,
  vocab: number,
  ignoreIndex: number,
  gradScale: number,
): number {
  const rows = targets.length;
  for (let n = 0; n < rows; n++) {
    const t = targets[n];
    if (t !== ignoreIndex && (t < 0 || t >= vocab)) {
      throw new RangeError(
        `crossEntropy: targets[${n}] = ${t} is outside [0, ${vocab}) and is not the ignore index ${ignoreIndex}`,
      );
    }
  }
  let counted = 0;
  for (let n = 0; n < rows; n++) {
    const row = n * vocab;
    const t = targets[n];
    if (t === ignoreIndex) {
      losses[n] = 0;
      if (dLogits !== null) dLogits.fill(0, row, row + vocab);
      continue;
    }
    counted++;
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) if (logits[row + v] > max) max = logits[row + v];
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[row + v] - max);
    const logSumExp = max + Math.log(sum);
    losses[n] = logSumExp - logits[row + t];
    if (dLogits !== null) {
      const inv = 1 / sum;
      for (let v = 0; v < vocab; v++) {
        const p = Math.exp(logits[row + v] - max) * inv;
        dLogits[row + v] = (v === t ? p - 1 : p) * gradScale;
      }
    }
  }
  return counted;
}
