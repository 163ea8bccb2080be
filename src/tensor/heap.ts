// The engine's memory: one shared WebAssembly.Memory that every kernel (TypeScript reference, wasm
// module, worker threads) reads and writes by byte offset. The Heap owns it and hands out
// 64-byte-aligned blocks with an explicit alloc/free (first fit, coalescing free list), so big
// buffers are released deterministically instead of waiting for the garbage collector.
//
// Contract:
// - Offsets below RESERVED_BYTES are never handed out: the thread pool's control block and
//   per-thread scratch live there (see kernels/wasm/pool.ts).
// - The memory grows on demand up to `maxBytes`; a request beyond that throws HeapExhaustedError
//   stating the bytes asked for, the bytes in use and the limit.
// - After growth `memory.buffer` is a new SharedArrayBuffer object: never cache typed-array views
//   across allocations; take them with f32()/u16()/i32()/u8() when needed.

import { BYTES_PER_ELEMENT, type DType } from "./dtype.js";
import { numel } from "./shape.js";
import { Tensor } from "./tensor.js";

const PAGE_BYTES = 65536;
/** wasm32 can address at most 65536 pages (4 GiB). */
const MAX_WASM_PAGES = 65536;
/** Bytes at the start of memory kept for engine control data. */
export const RESERVED_BYTES = 4 * PAGE_BYTES;
export const ALIGN_BYTES = 64;

export interface HeapOptions {
  /** Upper bound on the memory, in bytes (rounded up to 64 KiB pages). Default: 4 GiB. */
  maxBytes?: number;
  /** Bytes to map up front. Default: 64 MiB. */
  initialBytes?: number;
}

export class HeapExhaustedError extends Error {
  readonly requestedBytes: number;
  readonly inUseBytes: number;
  readonly limitBytes: number;

  constructor(requestedBytes: number, inUseBytes: number, limitBytes: number) {
    super(
      `engine memory exhausted: asked for ${requestedBytes} bytes (${formatBytes(requestedBytes)}) ` +
        `with ${formatBytes(inUseBytes)} in use and a limit of ${formatBytes(limitBytes)}`,
    );
    this.name = "HeapExhaustedError";
    this.requestedBytes = requestedBytes;
    this.inUseBytes = inUseBytes;
    this.limitBytes = limitBytes;
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

interface FreeBlock {
  start: number;
  size: number;
}

export class Heap {
  readonly memory: WebAssembly.Memory;
  readonly maxBytes: number;
  /** Free blocks sorted by start offset, never adjacent (coalesced). */
  private readonly freeList: FreeBlock[] = [];
  /** Size of every live allocation, by start offset. */
  private readonly live = new Map<number, number>();
  private inUse = 0;
  private peak = 0;
  /** memory.fill on this memory (see zeroFunction); created on first use. */
  private zeroFn: ((ptr: number, bytes: number) => void) | null = null;
  /** Told of every block alloc() hands out and free() takes back (see onBlockChange). */
  private readonly blockObservers = new Set<(start: number, bytes: number) => void>();

  constructor(options: HeapOptions = {}) {
    const maxPages = Math.min(
      MAX_WASM_PAGES,
      Math.ceil((options.maxBytes ?? 2 ** 32) / PAGE_BYTES),
    );
    const initialBytes = Math.max(
      options.initialBytes ?? 64 * 2 ** 20,
      RESERVED_BYTES + PAGE_BYTES,
    );
    const initialPages = Math.min(maxPages, Math.ceil(initialBytes / PAGE_BYTES));
    if (maxPages * PAGE_BYTES <= RESERVED_BYTES) {
      throw new Error(`heap maxBytes must exceed the ${RESERVED_BYTES} reserved bytes`);
    }
    this.memory = new WebAssembly.Memory({
      initial: initialPages,
      maximum: maxPages,
      shared: true,
    });
    this.maxBytes = maxPages * PAGE_BYTES;
    this.freeList.push({ start: RESERVED_BYTES, size: initialPages * PAGE_BYTES - RESERVED_BYTES });
  }

  get buffer(): SharedArrayBuffer {
    return this.memory.buffer as unknown as SharedArrayBuffer;
  }
  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }
  /** Bytes currently allocated (after alignment). */
  get bytesInUse(): number {
    return this.inUse;
  }
  /** Highest bytesInUse seen since construction or the last resetPeak(). */
  get peakBytes(): number {
    return this.peak;
  }
  resetPeak(): void {
    this.peak = this.inUse;
  }

  /**
   * Calls `observer(start, bytes)` whenever alloc() hands out a block or free() takes one back:
   * from then on nothing a kernel wrote there matters (an engine that keeps a device copy of the
   * heap, kernels/webgpu/mirror.ts, forgets what it knew of those bytes). Returns the unsubscribe.
   */
  onBlockChange(observer: (start: number, bytes: number) => void): () => void {
    this.blockObservers.add(observer);
    return () => this.blockObservers.delete(observer);
  }

  /**
   * Sets `bytes` bytes from byte offset `ptr` to zero with wasm's memory.fill. Why not
   * Uint8Array.fill: on a SharedArrayBuffer V8 fills element by element, far slower, and a training
   * step zeroes all gradient buffers (timings: docs/engine-notes.md).
   */
  zero(ptr: number, bytes: number): void {
    if (
      !Number.isSafeInteger(ptr) ||
      !Number.isSafeInteger(bytes) ||
      ptr < 0 ||
      bytes < 0 ||
      ptr + bytes > this.byteLength
    ) {
      throw new RangeError(
        `heap.zero: [${ptr}, ${ptr} + ${bytes}) is outside the ${this.byteLength}-byte memory`,
      );
    }
    if (bytes === 0) return;
    this.zeroFn ??= zeroFunction(this.memory);
    this.zeroFn(ptr, bytes);
  }

  /** Allocates `bytes` (>= 0) and returns the 64-byte-aligned byte offset. Contents are undefined. */
  alloc(bytes: number): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0) {
      throw new RangeError(`heap.alloc: byte count must be a non-negative integer, got ${bytes}`);
    }
    const size = Math.max(ALIGN_BYTES, Math.ceil(bytes / ALIGN_BYTES) * ALIGN_BYTES);
    let index = this.firstFit(size);
    if (index < 0) {
      this.grow(size, bytes);
      index = this.firstFit(size);
      if (index < 0) throw new HeapExhaustedError(bytes, this.inUse, this.maxBytes);
    }
    const block = this.freeList[index];
    const start = block.start;
    if (block.size === size) this.freeList.splice(index, 1);
    else {
      block.start += size;
      block.size -= size;
    }
    this.live.set(start, size);
    this.inUse += size;
    if (this.inUse > this.peak) this.peak = this.inUse;
    for (const observer of this.blockObservers) observer(start, size);
    return start;
  }

  /** Releases a block returned by alloc(). Freeing twice or freeing a foreign offset throws. */
  free(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`heap.free: ${ptr} is not a live allocation`);
    this.live.delete(ptr);
    this.inUse -= size;
    for (const observer of this.blockObservers) observer(ptr, size);
    // insert sorted, then merge with neighbours
    let lo = 0;
    let hi = this.freeList.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.freeList[mid].start < ptr) lo = mid + 1;
      else hi = mid;
    }
    this.freeList.splice(lo, 0, { start: ptr, size });
    const next = this.freeList[lo + 1];
    const cur = this.freeList[lo];
    if (next !== undefined && cur.start + cur.size === next.start) {
      cur.size += next.size;
      this.freeList.splice(lo + 1, 1);
    }
    const prev = this.freeList[lo - 1];
    if (prev !== undefined && prev.start + prev.size === cur.start) {
      prev.size += cur.size;
      this.freeList.splice(lo, 1);
    }
  }

  /** Allocates a tensor of the given shape (contents undefined; call fill(0) where zeros matter). */
  tensor(shape: readonly number[], dtype: DType = "f32"): Tensor {
    const bytes = numel(shape) * BYTES_PER_ELEMENT[dtype];
    return new Tensor(this, this.alloc(bytes), shape, dtype, true);
  }

  /** Allocates a zero-filled tensor. */
  zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
    const t = this.tensor(shape, dtype);
    this.zero(t.ptr, t.byteLength);
    return t;
  }

  /** Copies `values` into a new f32 (or i32 for Int32Array) tensor. */
  fromArray(values: ArrayLike<number>, shape: readonly number[] = [values.length]): Tensor {
    if (numel(shape) !== values.length) {
      throw new Error(`fromArray: ${values.length} values do not fill shape [${shape.join(", ")}]`);
    }
    const dtype: DType = values instanceof Int32Array ? "i32" : "f32";
    const t = this.tensor(shape, dtype);
    if (dtype === "i32") t.i32().set(values);
    else t.f32().set(values);
    return t;
  }

  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }
  u16(ptr: number, length: number): Uint16Array {
    return new Uint16Array(this.memory.buffer, ptr, length);
  }
  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length);
  }
  u8(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, length);
  }

  private firstFit(size: number): number {
    for (let i = 0; i < this.freeList.length; i++) if (this.freeList[i].size >= size) return i;
    return -1;
  }

  /** Maps more pages so that a block of `size` bytes fits (at the end of memory). */
  private grow(size: number, requested: number): void {
    const current = this.memory.buffer.byteLength;
    const last = this.freeList[this.freeList.length - 1];
    const tailFree = last !== undefined && last.start + last.size === current ? last.size : 0;
    const neededBytes = size - tailFree;
    const maxPages = this.maxBytes / PAGE_BYTES;
    const currentPages = current / PAGE_BYTES;
    const neededPages = Math.ceil(neededBytes / PAGE_BYTES);
    if (currentPages + neededPages > maxPages) {
      throw new HeapExhaustedError(requested, this.inUse, this.maxBytes);
    }
    // grow geometrically (x1.5) to keep the number of grow() calls small, within the limit
    const pages = Math.min(maxPages - currentPages, Math.max(neededPages, currentPages >>> 1));
    try {
      this.memory.grow(pages);
    } catch {
      throw new HeapExhaustedError(requested, this.inUse, current);
    }
    const added = pages * PAGE_BYTES;
    if (tailFree > 0) last.size += added;
    else this.freeList.push({ start: current, size: added });
  }
}

/**
 * A wasm function zero(ptr, bytes) running memory.fill(ptr, 0, bytes) on `memory` (bulk-memory
 * proposal, in every runtime that has SIMD). The module, byte by byte (WebAssembly core spec 2.0,
 * binary format section 5.5), written out here rather than with kernels/wasm/asm.ts so that the
 * tensor layer does not depend on the kernels above it:
 *   (module
 *     (import "e" "m" (memory 0 65536 shared))
 *     (func (export "zero") (param i32 i32) local.get 0  i32.const 0  local.get 1  memory.fill))
 */
function zeroFunction(memory: WebAssembly.Memory): (ptr: number, bytes: number) => void {
  const bytes = new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // magic, version 1
    0x01,
    0x06,
    0x01,
    0x60,
    0x02,
    0x7f,
    0x7f,
    0x00, // type section: (i32, i32) -> ()
    // import section: "e" "m" memory, limits flag 3 (shared, with max), min 0, max 65536 (LEB128)
    0x02,
    0x0b,
    0x01,
    0x01,
    0x65,
    0x01,
    0x6d,
    0x02,
    0x03,
    0x00,
    0x80,
    0x80,
    0x04,
    0x03,
    0x02,
    0x01,
    0x00, // function section: one function of type 0
    0x07,
    0x08,
    0x01,
    0x04,
    0x7a,
    0x65,
    0x72,
    0x6f,
    0x00,
    0x00, // export "zero" = function 0
    // code section: no locals; local.get 0, i32.const 0, local.get 1, memory.fill 0, end
    0x0a,
    0x0d,
    0x01,
    0x0b,
    0x00,
    0x20,
    0x00,
    0x41,
    0x00,
    0x20,
    0x01,
    0xfc,
    0x0b,
    0x00,
    0x0b,
  ]);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: { m: memory } });
  return instance.exports.zero as (ptr: number, bytes: number) => void;
}
