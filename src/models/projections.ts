// Groups of linear layers that read the same input: q/k/v and gate/up. A group is either separate
// nn.Linear layers (Llama: q_proj, k_proj, v_proj) or ONE fused layer whose output columns are the
// parts side by side (Phi-3: qkv_proj = q | k | v, gate_up_proj = gate | up, modeling_phi3.py's
// slicing and chunk(2, dim=-1)). A fused layer is one LinearLayer, as PEFT sees it: an adapter on
// it covers the whole fused output, and its weight gradient is the fused weight's gradient.
//
// The fused forward writes the whole output to a scratch buffer (R, sum of widths) and copies each
// part's columns out; its backward copies the parts' gradients back side by side and runs one
// backward. The copies are kernel calls (Kernels.copyColumns).

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import type { LinearLayer } from "./common.js";

export class Projections {
  /** One layer per part, or one fused layer for all parts. */
  readonly layers: readonly LinearLayer[];
  /** Output width of each part. */
  private readonly widths: readonly number[];

  constructor(layers: readonly LinearLayer[], widths: readonly number[]) {
    if (layers.length !== 1 && layers.length !== widths.length)
      throw new Error(`Projections: ${layers.length} layers for ${widths.length} parts`);
    this.layers = layers;
    this.widths = widths;
  }

  get fused(): boolean {
    return this.layers.length === 1 && this.widths.length > 1;
  }

  /** Sum of the parts' widths: the fused layer's output width. */
  get width(): number {
    return this.widths.reduce((a, b) => a + b, 0);
  }

  /**
   * outs[i] (R, widths[i]) = part i of inp (R, in) W^T (+ adapters). scratch: at least R * width
   * floats, used only when fused.
   */
  forward(
    k: Kernels,
    outs: readonly Tensor[],
    inp: Tensor,
    scratch: Tensor | null,
    recompute = false,
  ): void {
    if (!this.fused) {
      for (const [i, layer] of this.layers.entries()) layer.forward(k, outs[i], inp, recompute);
      return;
    }
    const all = this.scratchView(scratch, inp.shape[0]);
    this.layers[0].forward(k, all, inp, recompute);
    let col = 0;
    this.widths.forEach((w, i) => {
      k.copyColumns(outs[i], 0, all, col, w);
      col += w;
    });
  }

  /**
   * Backward of forward: dInp (R, in) = sum of the parts' input gradients (overwritten; null when
   * not needed), weight/bias gradients into paramGrads, adapters' backward. dOuts[i]: (R, widths[i]).
   */
  backward(
    k: Kernels,
    dInp: Tensor | null,
    dOuts: readonly Tensor[],
    inp: Tensor,
    paramGrads: ReadonlyMap<string, Tensor> | undefined,
    scratch: Tensor | null,
  ): void {
    if (!this.fused) {
      for (const [i, layer] of this.layers.entries())
        layer.backward(k, dInp, dOuts[i], inp, paramGrads, i === 0);
      return;
    }
    const all = this.scratchView(scratch, inp.shape[0]);
    let col = 0;
    this.widths.forEach((w, i) => {
      k.copyColumns(all, col, dOuts[i], 0, w);
      col += w;
    });
    this.layers[0].backward(k, dInp, all, inp, paramGrads, true);
  }

  private scratchView(scratch: Tensor | null, rows: number): Tensor {
    if (scratch === null) throw new Error("Projections: a fused layer needs a scratch buffer");
    return scratch.view([rows, this.width]);
  }
}
