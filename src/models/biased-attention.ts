// Attention with an additive score bias, bidirectional or causal, for T5 (models/t5.ts): per head
//   out = softmax(Q K^T + bias + mask) V
// with no 1/sqrt(D) scale (T5 folds it into its initialisation, T5Attention.scaling = 1), a bias
// (H, Tq, Tk) shared by every batch row (T5's relative position bias; none for cross-attention),
// key-side padding masked by keyLengths (HF adds the extended attention mask to the scores), and
// the causal mask for the decoder's self-attention. Queries and keys may differ in length
// (cross-attention: Tq decoder tokens over Tk encoder tokens).
// Also the bias itself: relativeBuckets (T5Attention._relative_position_bucket) and the gather of
// the (buckets, H) table into (H, Tq, Tk) scores with its scatter-add backward.
//
// Why not attention.ts: its tiled path is built around the causal square case with one scale,
// and a bias would have to enter every tile of both of its paths; T5 attends over at most a few
// hundred tokens, so this module keeps the whole (B, H, Tq, Tk) probabilities per layer ("full"
// attention, memory quadratic in T), and the causal models' attention stays untouched.
// Contract: forward overwrites `out` and `probs` (the layer's saved state); backward overwrites
// dq, dk, dv and accumulates into dBias when given; scratch (two (B, H, Tq, Tk) buffers) is the
// caller's. Everything runs through the Kernels interface, except the bucket table (host ints,
// which the model uploads).
// Legend: B batch, H heads, Tq query tokens, Tk key tokens, D head dim, NB buckets.

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";

/** Per call: the bias, the masks. */
export interface BiasedAttentionOptions {
  /** (H, Tq, Tk) added to every batch row's scores, or null. */
  bias: Tensor | null;
  /** (B) i32: key j of row b is masked when j >= keyLengths[b]. */
  keyLengths: Tensor;
  /** Query i sees keys j <= i only (Tq == Tk). */
  causal: boolean;
}

/**
 * out (B, H, Tq, D) = softmax(q k^T + bias + masks) v; q (B, H, Tq, D), k and v (B, H, Tk, D).
 * probs (B, H, Tq, Tk): overwritten with the probabilities (kept for backward).
 */
export function biasedAttentionForward(
  kn: Kernels,
  out: Tensor,
  probs: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: BiasedAttentionOptions,
): void {
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const scores = probs; // the raw scores are built in place, then softmaxed into themselves
  kn.matmul(scores.view([B * H, Tq, Tk]), q.view([B * H, Tq, D]), k.view([B * H, Tk, D]), {
    transB: true,
  });
  if (o.bias !== null) {
    const n = H * Tq * Tk;
    for (let b = 0; b < B; b++) kn.add(scores.view([n], b * n), scores.view([n], b * n), o.bias);
  }
  kn.attentionSoftmax(probs, scores, { scale: 1, causal: o.causal, keyLengths: o.keyLengths });
  kn.matmul(out.view([B * H, Tq, D]), probs.view([B * H, Tq, Tk]), v.view([B * H, Tk, D]));
}

/**
 * Gradients of biasedAttentionForward: dq, dk, dv overwritten; dBias (H, Tq, Tk) += the sum over
 * batch rows of d scores (when given). dProbs, dScores: (B, H, Tq, Tk) scratch.
 */
export function biasedAttentionBackward(
  kn: Kernels,
  dq: Tensor,
  dk: Tensor,
  dv: Tensor,
  dBias: Tensor | null,
  dOut: Tensor,
  probs: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  scratch: { dProbs: Tensor; dScores: Tensor },
): void {
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const M = B * H;
  const P = probs.view([M, Tq, Tk]);
  const dP = scratch.dProbs.view([M, Tq, Tk]);
  const dS = scratch.dScores.view([M, Tq, Tk]);
  const dO = dOut.view([M, Tq, D]);
  kn.matmul(dP, dO, v.view([M, Tk, D]), { transB: true }); // dP = dO v^T
  kn.matmul(dv.view([M, Tk, D]), P, dO, { transA: true }); // dv = P^T dO
  kn.attentionSoftmaxBackward(dS, P, dP, 1, { accumulate: false });
  kn.matmul(dq.view([M, Tq, D]), dS, k.view([M, Tk, D])); // dq = dS k
  kn.matmul(dk.view([M, Tk, D]), dS, q.view([M, Tq, D]), { transA: true }); // dk = dS^T q
  if (dBias !== null) {
    const n = H * Tq * Tk;
    for (let b = 0; b < B; b++) kn.add(dBias, dBias, scratch.dScores.view([n], b * n));
  }
}

/**
 * T5's relative position bucket of every (query i, key j) pair, (Tq * Tk) row-major, for relative
 * position j - i (T5Attention._relative_position_bucket, after Mesh TensorFlow): bidirectional
 * stacks give half the buckets to keys after the query; within a half, distances below half of it
 * get a bucket each, larger ones logarithmically wider buckets up to maxDistance. The logarithm is
 * taken in f32, as PyTorch does on relative_position.float().
 */
export function relativeBuckets(
  Tq: number,
  Tk: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): Int32Array {
  const out = new Int32Array(Tq * Tk);
  const half = bidirectional ? Math.floor(numBuckets / 2) : numBuckets;
  const maxExact = Math.floor(half / 2);
  const logRange = Math.fround(Math.log(maxDistance / maxExact));
  for (let i = 0; i < Tq; i++) {
    for (let j = 0; j < Tk; j++) {
      let rel = j - i;
      let bucket = 0;
      if (bidirectional) {
        if (rel > 0) bucket += half;
        rel = Math.abs(rel);
      } else {
        rel = -Math.min(rel, 0);
      }
      if (rel < maxExact) bucket += rel;
      else {
        const ratio = Math.fround(Math.log(Math.fround(rel / maxExact)));
        const large =
          maxExact + Math.trunc(Math.fround(Math.fround(ratio / logRange) * (half - maxExact)));
        bucket += Math.min(large, half - 1);
      }
      out[i * Tk + j] = bucket;
    }
  }
  return out;
}

/** Scratch of the position bias of one (Tq, Tk): the bucket ids and the (Tq*Tk, H) gather. */
export interface PositionBiasBuffers {
  buckets: Tensor; // (Tq*Tk) i32
  gathered: Tensor; // (Tq*Tk, H)
}

/** bias (H, Tq, Tk) = table (NB, H) at the buckets, permuted (T5Attention.compute_bias). */
export function positionBiasForward(
  kn: Kernels,
  bias: Tensor,
  table: Tensor,
  buf: PositionBiasBuffers,
): void {
  const [H, Tq, Tk] = bias.shape;
  kn.embedding(buf.gathered, table, buf.buckets); // (Tq*Tk, H)
  kn.permute0213(bias.view([1, H, Tq * Tk, 1]), buf.gathered.view([1, Tq * Tk, H, 1]));
}

/** dTable (NB, H) += dBias (H, Tq, Tk) scattered back to its buckets. */
export function positionBiasBackward(
  kn: Kernels,
  dTable: Tensor,
  dBias: Tensor,
  buf: PositionBiasBuffers,
): void {
  const [H, Tq, Tk] = dBias.shape;
  kn.permute0213(buf.gathered.view([1, Tq * Tk, H, 1]), dBias.view([1, H, Tq * Tk, 1]));
  kn.embeddingBackward(dTable, buf.gathered, buf.buckets);
}
