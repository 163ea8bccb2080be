// An int8 / nf4 frozen weight whose codes and scales are engine-heap tensors rather than host
// arrays, for an engine whose tensors live on a device (one with Kernels.dequantize: webgpu). The
// codes reach the device once, as any heap tensor a kernel reads (kernels/webgpu/mirror.ts), and
// each matmul's weight is expanded there by kernels.dequantize: nothing is expanded on the host
// per step. The host can still expand it (dequantize*Into, through views of the heap tensors), so
// reading, rewriting and re-storing the weight work as for the off-heap kinds.
// Contract: the host writes the tensors once, at construction; dispose() frees them.

import type { Kernels, QuantCodes } from "../kernels/kernels.js";
import type { Heap } from "../tensor/heap.js";
import type { Tensor } from "../tensor/tensor.js";
import { packedCodes, type QuantizedWeight, weightFromCodes } from "./quantized-linear.js";

export class HeapCodesWeight implements QuantizedWeight, QuantCodes {
  readonly kind: "int8" | "nf4";
  /** [out, in] */
  readonly shape: readonly [number, number];
  readonly bytes: number;
  /** u8: int8 (out * in), nf4 (ceil(out * in / 2)) */
  readonly codes: Tensor;
  /** f32 (ceil(out * in / blocksize)) */
  readonly scales: Tensor;
  readonly blocksize: number;

  /** Copies the codes and scales of an int8 / nf4 host weight into new heap tensors. */
  constructor(weight: QuantizedWeight, heap: Heap) {
    const packed = packedCodes(weight);
    if (packed === null) throw new Error(`internal: a ${weight.kind} weight has no codes`);
    this.kind = packed.kind;
    this.shape = weight.shape;
    this.bytes = weight.bytes;
    this.blocksize = packed.blocksize;
    this.codes = heap.tensor([packed.codes.length], "u8");
    try {
      this.scales = heap.tensor([packed.scales.length], "f32");
    } catch (error) {
      this.codes.dispose();
      throw error;
    }
    this.codes.u8().set(packed.codes);
    this.scales.f32().set(packed.scales);
  }

  /** out (out, in) f32 = the weight, expanded by the kernels on their device. */
  expandOn(kernels: Kernels, out: Tensor): void {
    if (kernels.dequantize === undefined)
      throw new Error(`internal: the ${kernels.name} engine cannot expand weights on a device`);
    kernels.dequantize(out, this);
  }

  dequantizeInto(out: Tensor): void {
    this.onHost().dequantizeInto(out);
  }

  dequantizeRowsInto(out: Tensor, rowStart: number, rowEnd: number): void {
    this.onHost().dequantizeRowsInto(out, rowStart, rowEnd);
  }

  dispose(): void {
    this.codes.dispose();
    this.scales.dispose();
  }

  /** The host's view of the weight (views of the heap taken now: the heap may have grown). */
  private onHost(): QuantizedWeight {
    const packed = {
      kind: this.kind,
      codes: this.codes.u8(),
      scales: this.scales.f32(),
      blocksize: this.blocksize,
    };
    return weightFromCodes(packed, this.shape);
  }
}
