// A Tensor is a typed, shaped, contiguous block of the engine's Heap: a byte offset plus metadata.
// It owns its block (dispose() frees it) or is a view into another tensor's block (dispose() only
// marks the view dead). Data is read and written through typed-array views taken on demand.

import { BYTES_PER_ELEMENT, type DType } from "./dtype.js";
import type { Heap } from "./heap.js";
import { numel, shapeString } from "./shape.js";

export class Tensor {
  readonly heap: Heap;
  /** Byte offset in heap memory. */
  readonly ptr: number;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  private readonly owner: boolean;
  private live = true;

  constructor(heap: Heap, ptr: number, shape: readonly number[], dtype: DType, owner: boolean) {
    this.heap = heap;
    this.ptr = ptr;
    this.dtype = dtype;
    this.owner = owner;
    this.shape = Object.freeze([...shape]);
    this.size = numel(shape);
  }

  get byteLength(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }
  get disposed(): boolean {
    return !this.live;
  }
  get rank(): number {
    return this.shape.length;
  }

  /** Float32Array view of an f32 tensor. */
  f32(): Float32Array {
    this.expect("f32");
    return this.heap.f32(this.ptr, this.size);
  }
  /** Raw 16-bit view of an f16 or bf16 tensor. */
  u16(): Uint16Array {
    this.checkLive();
    if (this.dtype !== "f16" && this.dtype !== "bf16") {
      throw new Error(`tensor ${shapeString(this.shape)} is ${this.dtype}, not a 16-bit float`);
    }
    return this.heap.u16(this.ptr, this.size);
  }
  i32(): Int32Array {
    this.expect("i32");
    return this.heap.i32(this.ptr, this.size);
  }
  u8(): Uint8Array {
    this.checkLive();
    return this.heap.u8(this.ptr, this.byteLength);
  }

  /** A copy of an f32 tensor's values, independent of the heap. */
  toArray(): Float32Array {
    // new + set: TypedArray.slice() on shared memory takes V8's slow path (docs/engine-notes.md)
    const out = new Float32Array(this.size);
    out.set(this.f32());
    return out;
  }

  /**
   * A non-owning tensor over `numel(shape)` elements starting `offset` elements into this one.
   * Views share memory with their base; they must not outlive it.
   */
  view(shape: readonly number[], offset = 0): Tensor {
    this.checkLive();
    const n = numel(shape);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + n > this.size) {
      throw new RangeError(
        `view ${shapeString(shape)} at offset ${offset} exceeds tensor ${shapeString(this.shape)}`,
      );
    }
    return new Tensor(
      this.heap,
      this.ptr + offset * BYTES_PER_ELEMENT[this.dtype],
      shape,
      this.dtype,
      false,
    );
  }

  /** Same data, new shape with the same number of elements. */
  reshape(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new Error(`cannot reshape ${shapeString(this.shape)} to ${shapeString(shape)}`);
    }
    return this.view(shape, 0);
  }

  fill(value: number): this {
    if (value === 0) {
      this.checkLive();
      this.heap.zero(this.ptr, this.byteLength);
    } else if (this.dtype === "f32") this.f32().fill(value);
    else if (this.dtype === "i32") this.i32().fill(value);
    else throw new Error(`fill(${value}) is only defined for f32 and i32 tensors`);
    return this;
  }

  dispose(): void {
    if (!this.live) return;
    this.live = false;
    if (this.owner) this.heap.free(this.ptr);
  }

  toString(): string {
    return `Tensor(${this.dtype}, ${shapeString(this.shape)})`;
  }

  private checkLive(): void {
    if (!this.live) throw new Error(`use of disposed ${this.toString()}`);
  }
  private expect(dtype: DType): void {
    this.checkLive();
    if (this.dtype !== dtype) throw new Error(`${this.toString()} is not ${dtype}`);
  }
}
