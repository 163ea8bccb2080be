// The lm_head and the causal-LM cross-entropy over row chunks: logits (rows, V) and their gradient
// exist for at most `chunk` rows at a time, never for the whole (B*T, V) block (at a 152k
// vocabulary 512 tokens of logits alone are 0.3 GB). Per chunk of rows:
//   logits = head(x rows)                                  (chunk, V)
//   losses rows, dLogits = crossEntropy(logits, targets)   dLogits written over the logits
//   training: d x rows = head backward(dLogits)            dW (and the adapter's gradients)
//                                                          accumulate over the chunks
// Which rows: every row, or — when rows whose target is ignored are a large share (prompt tokens
// under completion-only loss, padding) — only the counted rows, gathered chunk by chunk into a
// compact block and their input gradients scattered back.
//
// Contract: no allocation (the caller's HeadBuffers are sized once per plan); each row's logits,
// loss and input gradient are computed exactly as an unchunked head would compute them; only the
// order in which the weight gradient sums its rows changes (chunk by chunk).
// Legend: R rows (B*T), C hidden, V vocab, n counted rows.

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import { IGNORE_INDEX, type LinearLayer } from "./common.js";

/** Default bound on one chunk of f32 logits (CausalLM MemoryOptions.logitsChunkBytes). */
export const DEFAULT_LOGITS_CHUNK_BYTES = 64 * 2 ** 20;

/**
 * Skipping the lm_head on rows whose label is ignored pays once they are at least this share of
 * the batch: it costs a gather of the counted rows' hidden states and a scatter of their
 * gradients; each skipped row saves 4 * hidden * vocab flops of the head's forward and backward.
 */
const HEAD_SKIP_MIN_SHARE = 1 / 16;

/** Rows per chunk: as many f32 logit rows (V values each) as fit `bytes`, at least 1, at most R. */
export function logitsChunkRows(bytes: number, vocab: number, rows: number): number {
  return Math.max(1, Math.min(rows, Math.floor(bytes / (4 * vocab))));
}

/** Scratch of the chunked head, owned by the caller (decoder-base.ts DecoderPlan). */
export interface HeadBuffers {
  /** (chunk, V) one chunk's logits, overwritten by their gradient in training. */
  readonly logits: Tensor;
  /** (R) per-row losses. */
  readonly losses: Tensor;
  /** The counted-rows path's buffers, allocated on first use. */
  headRows(): CountedRows;
}

/** Scratch of the head over the counted rows only. */
export interface CountedRows {
  readonly rows: Tensor; // (R) i32, indices of the counted rows (the first n used)
  readonly targets: Tensor; // (R) i32, their targets
  readonly x: Tensor; // (chunk, C) one chunk of gathered head inputs
  readonly dx: Tensor; // (chunk, C) their gradient
}

/** The training half of a head pass: dLogits scale, gradient targets, and d x. */
export interface HeadTraining {
  /** dLogits = (softmax - onehot) * gradScale (lossScale / counted tokens for a mean). */
  gradScale: number;
  paramGrads: ReadonlyMap<string, Tensor> | undefined;
  /** (R, C) OVERWRITTEN with d loss / d x (zero on rows whose target is ignored). */
  dx: Tensor;
}

/** Per-row losses of a head pass: (R) with rows null (0 where ignored), or (n) of `rows` (n) i32. */
export interface HeadLosses {
  losses: Tensor;
  rows: Tensor | null;
}

/**
 * The lm_head on x (R, C) and the cross-entropy against targets (R) i32 (`tokens` of them
 * counted), chunk by chunk; with `training`, also the head's backward into training.dx and the
 * weight / adapter gradients.
 */
export function chunkedHeadLoss(
  k: Kernels,
  head: LinearLayer,
  buffers: HeadBuffers,
  x: Tensor,
  targets: Tensor,
  tokens: number,
  training: HeadTraining | null,
): HeadLosses {
  const [R, C] = x.shape;
  const [chunk, V] = buffers.logits.shape;
  // one chunk: head forward, cross-entropy (dLogits in place), head backward into dx
  const run = (xc: Tensor, tc: Tensor, losses: Tensor, dxc: Tensor | null): void => {
    const n = xc.shape[0];
    const logits = buffers.logits.view([n, V]); // (n, V)
    head.forward(k, logits, xc);
    if (training === null) {
      k.crossEntropy(losses, null, logits, tc);
      return;
    }
    k.crossEntropy(losses, logits, logits, tc, { gradScale: training.gradScale });
    head.backward(k, dxc, logits, xc, training.paramGrads, true);
  };
  if (R - tokens < R * HEAD_SKIP_MIN_SHARE) {
    for (let r0 = 0; r0 < R; r0 += chunk) {
      const n = Math.min(chunk, R - r0);
      const dxc = training === null ? null : training.dx.view([n, C], r0 * C);
      run(x.view([n, C], r0 * C), targets.view([n], r0), buffers.losses.view([n], r0), dxc);
    }
    return { losses: buffers.losses, rows: null };
  }
  const c = buffers.headRows();
  const all = targets.i32();
  const rowIds = c.rows.i32();
  const counted = c.targets.i32();
  let n = 0;
  for (let r = 0; r < R; r++) {
    if (all[r] === IGNORE_INDEX) continue;
    rowIds[n] = r;
    counted[n] = all[r];
    n++;
  }
  k.upload(c.rows, c.targets);
  if (training !== null) k.fill(training.dx, 0); // the chunks scatter-add into it
  for (let i0 = 0; i0 < n; i0 += chunk) {
    const m = Math.min(chunk, n - i0);
    const rows = c.rows.view([m], i0);
    const xc = c.x.view([m, C]);
    k.embedding(xc, x, rows); // gather the chunk's rows
    const dxc = training === null ? null : c.dx.view([m, C]);
    run(xc, c.targets.view([m], i0), buffers.losses.view([m], i0), dxc);
    if (training !== null && dxc !== null) k.embeddingBackward(training.dx, dxc, rows); // scatter-add
  }
  return { losses: buffers.losses.view([n]), rows: c.rows.view([n]) };
}
