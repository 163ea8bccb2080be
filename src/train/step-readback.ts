// What a training step reads back on the host: the loss of each micro-batch and the global
// gradient norm, all in one await per step (trainer.ts).
//
// On the CPU engines (kernels.deferred false) the numbers are there as soon as the kernels return:
// the losses are lossAndGrads' return values and the norm is globalGradNorm's (clip.ts), both
// summed in float64, exactly as before this module existed. On a deferred engine (webgpu) the
// kernels write them into `slots` on the device (lossAndGrads' lossOut, sumSquaresInto) and read()
// downloads those few floats once; the host sums them in float64 in the same order.

import type { Kernels } from "../kernels/kernels.js";
import type { Batch, CausalLM, LossAndGradsOptions } from "../models/model.js";
import type { Tensor } from "../tensor/tensor.js";
import { globalGradNorm } from "./clip.js";

export class StepReadback {
  private readonly kernels: Kernels;
  private readonly grads: readonly Tensor[];
  private readonly microBatches: number;
  /** Deferred engines only: (microBatches + grads.length) f32, the losses then the sums of squares. */
  private readonly slots: Tensor | null;
  /** CPU engines: the losses of the step's micro-batches so far. */
  private readonly hostLosses: number[] = [];

  constructor(kernels: Kernels, microBatches: number, grads: readonly Tensor[]) {
    this.kernels = kernels;
    this.grads = grads;
    this.microBatches = microBatches;
    this.slots = kernels.deferred ? kernels.heap.zeros([microBatches + grads.length]) : null;
  }

  /** model.lossAndGrads on micro-batch `micro` of the step; returns its counted tokens. */
  lossAndGrads(
    model: CausalLM,
    batch: Batch,
    micro: number,
    options: Omit<LossAndGradsOptions, "lossOut">,
  ): number {
    if (this.slots === null) {
      const r = model.lossAndGrads(batch, options);
      this.hostLosses[micro] = r.loss;
      return r.tokens;
    }
    return model.lossAndGrads(batch, { ...options, lossOut: this.slots.view([1], micro) }).tokens;
  }

  /**
   * The step's loss (mean of its micro-batch losses) and the global gradient norm of the
   * gradients as they are now; call after the last micro-batch.
   */
  async read(): Promise<{ loss: number; gradNorm: number }> {
    const n = this.microBatches;
    if (this.slots === null) {
      let lossSum = 0;
      for (let i = 0; i < n; i++) lossSum += this.hostLosses[i];
      this.hostLosses.length = 0;
      return { loss: lossSum / n, gradNorm: globalGradNorm(this.kernels, this.grads) };
    }
    this.grads.forEach((g, j) => {
      this.kernels.sumSquaresInto((this.slots as Tensor).view([1], n + j), g);
    });
    await this.kernels.download(this.slots);
    const values = this.slots.f32();
    let lossSum = 0;
    for (let i = 0; i < n; i++) lossSum += values[i];
    let sumSq = 0;
    for (let j = 0; j < this.grads.length; j++) sumSq += values[n + j];
    return { loss: lossSum / n, gradNorm: Math.sqrt(sumSq) };
  }

  dispose(): void {
    this.slots?.dispose();
  }
}
