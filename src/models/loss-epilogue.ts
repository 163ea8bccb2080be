// The loss side of a language model's lossAndGrads and tokenLosses, between its forward pass and
// its backward pass, shared by the decoder-only models (decoder-base.ts) and T5 (t5.ts):
//   lossAndGrads  no counted token: d x = 0 and loss 0; else the chunked head (lm-head.ts) with
//                 dLogits scaled by lossScale / tokens, which writes d loss / d x, and the mean
//                 loss = sum(per-row losses) / tokens, read back as a number or kept on the
//                 engine in lossOut (then the number is NaN)
//   tokenLosses   the head's per-row losses downloaded and spread over every row, 0 where ignored
//
// Contract: the model supplies the head pass (which rows, which hidden states, which lm_head);
// this module only decides when it runs, how its losses reduce to the mean, and where they land.
// The mean is transformers' loss over counted tokens (ForCausalLMLoss, and T5's CrossEntropyLoss
// with ignore_index -100).

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import type { HeadLosses, HeadTraining } from "./lm-head.js";
import type { LossAndGradsOptions } from "./model.js";

/** Throws unless options.lossOut, when given, is one f32 element. */
export function checkLossOut(lossOut: Tensor | undefined): void {
  if (lossOut !== undefined && (lossOut.dtype !== "f32" || lossOut.size !== 1))
    throw new Error(`lossAndGrads: lossOut must be one f32 element, got ${lossOut.toString()}`);
}

/**
 * The loss and d x of a lossAndGrads over `tokens` counted targets: dx (R, C) is overwritten
 * (zero when nothing is counted, else by `head` with the training half built here). Returns the
 * mean loss, or NaN when options.lossOut receives it on the engine instead.
 */
export function meanHeadLoss(
  k: Kernels,
  options: LossAndGradsOptions,
  tokens: number,
  dx: Tensor,
  head: (training: HeadTraining) => HeadLosses,
): number {
  const { lossOut, paramGrads } = options;
  if (tokens === 0) {
    k.fill(dx, 0); // nothing counted: no gradient flows from the loss
    if (lossOut !== undefined) k.fill(lossOut, 0);
    return lossOut === undefined ? 0 : Number.NaN;
  }
  const { losses } = head({ gradScale: (options.lossScale ?? 1) / tokens, paramGrads, dx });
  if (lossOut !== undefined) {
    k.sumInto(lossOut, losses);
    k.scale(lossOut, lossOut, 1 / tokens);
    return Number.NaN;
  }
  return k.sum(losses) / tokens;
}

/** A head pass's per-row losses as (R) host values, 0 on the rows whose target is ignored. */
export async function rowLosses(k: Kernels, pass: HeadLosses, R: number): Promise<Float32Array> {
  await k.download(pass.losses);
  const losses = pass.losses.toArray();
  if (pass.rows === null) return losses; // cross-entropy wrote 0 on the ignored rows
  const nll = new Float32Array(R);
  const ids = pass.rows.i32();
  for (let i = 0; i < ids.length; i++) nll[ids[i]] = losses[i];
  return nll;
}
