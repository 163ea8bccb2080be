// loraga's public API: re-exports only.
export { Heap, HeapExhaustedError, type HeapOptions } from "./tensor/heap.js";
export { Tensor } from "./tensor/tensor.js";
export type { DType } from "./tensor/dtype.js";
export type * from "./kernels/kernels.js";
