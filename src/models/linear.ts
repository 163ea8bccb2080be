// What every model exposes about its linear layers, and the hook through which LoRA (or any other
// adapter) plugs into them. Models own the base computation y = x W^T + b; an attached adapter adds
// its delta in forward and back-propagates through it in backward. The LoRA layer itself lives in
// peft/; models never depend on peft/.

import type { MatmulTerm } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";

/** One linear layer of a model, named as Hugging Face / PEFT name it. */
export interface LinearInfo {
  /** Module path, e.g. "model.layers.0.self_attn.q_proj" (PEFT's target matching runs on this). */
  readonly path: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Parameter name of the weight, e.g. "model.layers.0.self_attn.q_proj.weight". */
  readonly weightName: string;
  /** Parameter name of the bias, or null when the layer has none. */
  readonly biasName: string | null;
  /**
   * True when the weight is stored (in, out) — GPT-2's Conv1D — rather than nn.Linear's (out, in).
   * PEFT calls this fan_in_fan_out.
   */
  readonly fanInFanOut: boolean;
}

/**
 * An adapter attached to one linear layer. R is the number of rows (batch * time) of the call.
 * forward must remember whatever backward needs for the same call (the model calls forward for every
 * layer, then backward for every layer in reverse order, with the same tensors).
 * `recompute` (gradient checkpointing): this call repeats the layer's previous forward call on the
 * same input right before its backward; it must give the same result (replay any random draw,
 * such as a dropout mask, instead of drawing anew).
 */
export interface LinearAdapter {
  /** out (R, outFeatures) += delta(inp (R, inFeatures)). */
  forward(out: Tensor, inp: Tensor, recompute?: boolean): void;
  /**
   * dInp (R, inFeatures) += (d delta / d inp)^T dOut (R, outFeatures); also accumulates the adapter's
   * own parameter gradients. dInp is null when the model does not need the input gradient.
   */
  backward(dInp: Tensor | null, dOut: Tensor, inp: Tensor): void;
  /**
   * Optional fused form of forward: does forward's work up to a last product and returns that
   * product as a term for the layer to add inside its own matmul (MatmulOptions.plus), so the
   * output is read and written once; null when it cannot (the layer then calls forward).
   * Example: LoRA computes x A^T and returns s (x A^T) B^T.
   */
  forwardTerm?(inp: Tensor, recompute?: boolean): MatmulTerm | null;
  /**
   * Optional fused form of backward, called only when the model needs dInp: accumulates the
   * adapter's own parameter gradients and returns the dInp contribution as a term for the layer's
   * dInp matmul; null when it cannot (having done nothing: the layer then calls backward).
   */
  backwardTerm?(dOut: Tensor, inp: Tensor): MatmulTerm | null;
}
