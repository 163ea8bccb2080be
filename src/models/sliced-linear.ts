// A linear layer whose (out, in) weight is expanded a block of output rows at a time (weights.ts
// FrozenWeight.rowBlock): the lm_head of a model whose frozen weights live off the heap, where
// one f32 copy of the (vocab, hidden) weight would be the largest buffer of the whole run (1 GiB
// at a 128k vocabulary and hidden 2048). Per block of output rows [o0, o1) (a vocabulary slice):
//   Wb = rows [o0, o1) of W, widened to f32                    (ob, in)   in the weight scratch
//   forward:  out[:, o0:o1]  = x Wb^T                           through tmp (m, ob), m input rows
//   backward: dx            += dOut[:, o0:o1] Wb                 dOut's columns copied into tmp
//             dW[o0:o1, :]  += dOut[:, o0:o1]^T x               (the rows of dW are contiguous)
// tmp is the scratch's small output buffer (weights.ts reserveOut); input rows go through it in
// passes of as many rows as it holds. The bias and the adapter are applied on the whole output
// afterwards (their unfused forms, LinearAdapter.forward / backward).
//
// Contract: the same values as the whole-weight path to float rounding: out and dW are the same
// dot products over `in` (an engine may block them differently for another shape); dx sums the
// blocks' shares one after another instead of in one product over `out`. No heap allocation.
// Legend: n input rows, in / out features, ob rows of one block.

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import type { LinearAdapter } from "./linear.js";
import type { FrozenWeight, WeightScratch } from "./weights.js";

/** The row-block path's view of one linear layer (common.ts LinearLayer). */
interface SlicedLayer {
  readonly weight: FrozenWeight;
  readonly bias: Tensor | null;
  readonly adapter: LinearAdapter | null;
}

/** Default bound on one expanded block of an off-heap lm_head (MemoryOptions.headSliceBytes). */
export const DEFAULT_HEAD_SLICE_BYTES = 32 * 2 ** 20;

/** Output rows per block: as many f32 rows of `inF` values as fit `bytes` (Infinity: whole). */
export function sliceRows(bytes: number, inF: number): number {
  if (bytes === Number.POSITIVE_INFINITY) return bytes;
  return Math.max(1, Math.floor(bytes / (4 * inF)));
}

/** Calls fn(o0, o1, Wb (ob, in)) for each block of output rows, the block expanded. */
function eachBlock(
  k: Kernels,
  weight: FrozenWeight,
  fn: (o0: number, o1: number, w: Tensor) => void,
): void {
  const rows = weight.shape[0];
  const block = weight.rowBlock as number;
  for (let o0 = 0; o0 < rows; o0 += block) {
    const o1 = Math.min(rows, o0 + block);
    fn(o0, o1, weight.expandRows(k, o0, o1));
  }
}

/** Input rows per pass through the output buffer for blocks of `ob` rows (at least 1). */
function passRows(scratch: WeightScratch, ob: number): number {
  return Math.max(1, Math.floor(scratch.outSize / ob));
}

/** out (n, out) = inp (n, in) W^T (+ b, + the adapter's delta), block by block. */
export function slicedForward(
  k: Kernels,
  layer: SlicedLayer,
  out: Tensor,
  inp: Tensor,
  recompute: boolean,
): void {
  const [n, inF] = inp.shape;
  const outF = out.shape[out.shape.length - 1];
  eachBlock(k, layer.weight, (o0, o1, w) => {
    const ob = o1 - o0;
    const pass = passRows(layer.weight.scratch, ob);
    for (let r0 = 0; r0 < n; r0 += pass) {
      const m = Math.min(pass, n - r0);
      const tmp = layer.weight.scratch.outView([m, ob]); // (m, ob)
      k.matmul(tmp, inp.view([m, inF], r0 * inF), w, { transB: true });
      k.copyColumns(out.view([m, outF], r0 * outF), o0, tmp, 0, ob);
    }
  });
  if (layer.bias !== null) k.addBias(out, layer.bias);
  layer.adapter?.forward(out, inp, recompute);
}

/**
 * dInp (n, in) (+)= dOut (n, out) W (overwritten when overwriteInput), dW (out, in) += dOut^T inp
 * when dW is given, block by block; the bias and adapter gradients are left to the caller.
 */
export function slicedBackward(
  k: Kernels,
  layer: SlicedLayer,
  dInp: Tensor | null,
  dOut: Tensor,
  inp: Tensor,
  dW: Tensor | null,
  overwriteInput: boolean,
): void {
  const [n, inF] = inp.shape;
  const outF = dOut.shape[dOut.shape.length - 1];
  if (dInp === null && dW === null) return;
  eachBlock(k, layer.weight, (o0, o1, w) => {
    const ob = o1 - o0;
    const pass = passRows(layer.weight.scratch, ob);
    for (let r0 = 0; r0 < n; r0 += pass) {
      const m = Math.min(pass, n - r0);
      const tmp = layer.weight.scratch.outView([m, ob]); // (m, ob) dOut[r0:r0+m, o0:o1]
      k.copyColumns(tmp, 0, dOut.view([m, outF], r0 * outF), o0, ob);
      const x = inp.view([m, inF], r0 * inF);
      if (dInp !== null) {
        const accumulate = !(overwriteInput && o0 === 0); // the first block writes, then adds
        k.matmul(dInp.view([m, inF], r0 * inF), tmp, w, { accumulate });
      }
      if (dW !== null)
        k.matmul(dW.view([ob, inF], o0 * inF), tmp, x, { transA: true, accumulate: true });
    }
  });
}
