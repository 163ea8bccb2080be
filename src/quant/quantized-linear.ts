// Storage of a FROZEN linear weight W (out, in) in one of several formats, with dequantization to
// float32 into an engine tensor on demand (all compute is f32; see kernels/kernels.ts). A model can
// keep its base weights as QuantizedWeight and expand one weight (or a block of rows) at a time
// into a heap scratch tensor right before the matmul, so f32 copies of all layers never coexist.
//
// Kinds (a registry, `QUANTIZERS`, maps each to its constructor):
//   f32   4 bytes/weight, exact.
//   bf16  2 bytes/weight, round-to-nearest-even (tensor/dtype.ts), relative error <= 2^-9.
//   f16   2 bytes/weight, round-to-nearest-even, relative error <= 2^-11 in the normal range.
//   int8  1 byte/weight + 4 bytes/row: row-wise absmax (quant/int8.ts).
//   nf4   0.5 byte/weight + 4 bytes/block: QLoRA NF4, blocksize 64 by default (quant/nf4.ts).
// The compressed data lives in plain typed arrays outside the engine heap (the heap is a bounded
// wasm32 memory reserved for compute); `bytes` reports the compressed size.
// Contract: dequantize*Into OVERWRITE the f32 output tensor; they never allocate heap memory.

import { f16ToF32, f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { numel, shapeString } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { dequantizeInt8Rows, type Int8Weight, int8Bytes, isRange, quantizeInt8 } from "./int8.js";
import {
  dequantizeNf4Range,
  NF4_DEFAULT_BLOCKSIZE,
  type Nf4Weight,
  nf4Bytes,
  quantizeNf4,
} from "./nf4.js";

export type QuantKind = "f32" | "bf16" | "f16" | "int8" | "nf4";

export interface QuantizeOptions {
  /** NF4 block size (elements of the flattened weight per absmax). Default 64. */
  blocksize?: number;
}

export interface QuantizedWeight {
  readonly kind: QuantKind;
  /** [out, in] (the nn.Linear layout). */
  readonly shape: readonly [number, number];
  /** Bytes of compressed storage (codes plus scales). */
  readonly bytes: number;
  /** out (rows, cols) f32 = the whole dequantized weight. */
  dequantizeInto(out: Tensor): void;
  /** out (rowEnd - rowStart, cols) f32 = rows [rowStart, rowEnd) of the dequantized weight. */
  dequantizeRowsInto(out: Tensor, rowStart: number, rowEnd: number): void;
}

/** Checks the row range and the output tensor, returns the output's Float32Array view. */
function rowsTarget(
  kind: QuantKind,
  shape: readonly [number, number],
  out: Tensor,
  rowStart: number,
  rowEnd: number,
): Float32Array {
  const [rows, cols] = shape;
  if (!isRange(rowStart, rowEnd, rows)) {
    throw new RangeError(
      `${kind} weight ${shapeString(shape)}: rows [${rowStart}, ${rowEnd}) out of range`,
    );
  }
  if (out.dtype !== "f32" || out.size !== (rowEnd - rowStart) * cols) {
    throw new Error(
      `${kind} weight ${shapeString(shape)}: dequantize target must be f32 with ` +
        `${rowEnd - rowStart} x ${cols} elements, got ${out.toString()}`,
    );
  }
  return out.f32();
}

abstract class BaseWeight implements QuantizedWeight {
  abstract readonly kind: QuantKind;
  abstract readonly bytes: number;
  readonly shape: readonly [number, number];

  constructor(shape: readonly [number, number]) {
    this.shape = shape;
  }

  dequantizeInto(out: Tensor): void {
    this.dequantizeRowsInto(out, 0, this.shape[0]);
  }

  dequantizeRowsInto(out: Tensor, rowStart: number, rowEnd: number): void {
    const into = rowsTarget(this.kind, this.shape, out, rowStart, rowEnd);
    const cols = this.shape[1];
    this.writeRange(into, rowStart * cols, rowEnd * cols);
  }

  /** into[0 .. end-start) = dequantized flat elements [start, end). */
  protected abstract writeRange(into: Float32Array, start: number, end: number): void;
}

class F32Weight extends BaseWeight {
  readonly kind = "f32" as const;
  readonly bytes: number;
  readonly data: Float32Array; // (out, in)
  constructor(data: Float32Array, shape: readonly [number, number]) {
    super(shape);
    this.data = data.slice();
    this.bytes = 4 * data.length;
  }
  protected writeRange(into: Float32Array, start: number, end: number): void {
    into.set(this.data.subarray(start, end));
  }
}

class Half16Weight extends BaseWeight {
  readonly kind: "bf16" | "f16";
  readonly bytes: number;
  readonly bits: Uint16Array; // (out, in) raw 16-bit patterns
  constructor(kind: "bf16" | "f16", bits: Uint16Array, shape: readonly [number, number]) {
    super(shape);
    this.kind = kind;
    this.bits = bits;
    this.bytes = 2 * bits.length;
  }
  protected writeRange(into: Float32Array, start: number, end: number): void {
    const bits = this.bits;
    if (this.kind === "bf16") {
      // bf16 is the top half of an f32: widen by a 16-bit shift through an integer view
      const wide = new Uint32Array(into.buffer, into.byteOffset, into.length);
      for (let i = start; i < end; i++) wide[i - start] = bits[i] << 16;
    } else {
      for (let i = start; i < end; i++) into[i - start] = f16ToF32(bits[i]);
    }
  }
}

class Int8LinearWeight extends BaseWeight {
  readonly kind = "int8" as const;
  readonly bytes: number;
  readonly q: Int8Weight;
  constructor(q: Int8Weight) {
    super([q.rows, q.cols]);
    this.q = q;
    this.bytes = int8Bytes(q.rows, q.cols);
  }
  protected writeRange(into: Float32Array, start: number, end: number): void {
    const cols = this.q.cols;
    if (cols === 0) return; // nothing to write (and start / cols would be NaN)
    dequantizeInt8Rows(this.q, into, start / cols, end / cols);
  }
}

class Nf4LinearWeight extends BaseWeight {
  readonly kind = "nf4" as const;
  readonly bytes: number;
  readonly q: Nf4Weight;
  constructor(q: Nf4Weight, shape: readonly [number, number]) {
    super(shape);
    this.q = q;
    this.bytes = nf4Bytes(q.numel, q.blocksize);
  }
  protected writeRange(into: Float32Array, start: number, end: number): void {
    dequantizeNf4Range(this.q, into, start, end);
  }
}

/** Each f32 value encoded as 16 bits (a plain loop: Uint16Array.from with a map is far slower). */
function halfBits(data: Float32Array, encode: (value: number) => number): Uint16Array {
  const bits = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) bits[i] = encode(data[i]);
  return bits;
}

type Quantizer = (
  data: Float32Array,
  shape: readonly [number, number],
  options: QuantizeOptions,
) => QuantizedWeight;

/** kind -> constructor from f32 data (out, in). */
const QUANTIZERS: Readonly<Record<QuantKind, Quantizer>> = {
  f32: (data, shape) => new F32Weight(data, shape),
  bf16: (data, shape) => new Half16Weight("bf16", halfBits(data, f32ToBf16), shape),
  f16: (data, shape) => new Half16Weight("f16", halfBits(data, f32ToF16), shape),
  int8: (data, shape) => new Int8LinearWeight(quantizeInt8(data, shape[0], shape[1])),
  nf4: (data, shape, options) =>
    new Nf4LinearWeight(quantizeNf4(data, options.blocksize ?? NF4_DEFAULT_BLOCKSIZE), shape),
};

function isQuantKind(value: string): value is QuantKind {
  return Object.hasOwn(QUANTIZERS, value);
}

function checkShape(what: string, length: number, shape: readonly number[]): [number, number] {
  if (shape.length !== 2) {
    throw new Error(`${what}: a linear weight must be 2-D (out, in), got ${shapeString(shape)}`);
  }
  if (numel(shape) !== length) {
    throw new Error(`${what}: ${length} values do not fill shape ${shapeString(shape)}`);
  }
  return [shape[0], shape[1]];
}

/** Stores a frozen f32 weight (out, in) as `kind` (the data is copied or encoded, never kept). */
export function quantizeWeight(
  kind: QuantKind,
  data: Float32Array,
  shape: readonly number[],
  options: QuantizeOptions = {},
): QuantizedWeight {
  if (!isQuantKind(kind)) {
    throw new Error(
      `quantizeWeight: unknown kind "${String(kind)}"; ` +
        `supported: ${Object.keys(QUANTIZERS).join(", ")}`,
    );
  }
  return QUANTIZERS[kind](data, checkShape(`quantizeWeight(${kind})`, data.length, shape), options);
}

/** The codes and scales of an int8 / nf4 weight (QuantCodes' layout in kernels/kernels.ts). */
export interface PackedCodes {
  readonly kind: "int8" | "nf4";
  /** int8: (out * in) signed bytes; nf4: (ceil(numel / 2)) two codes per byte. */
  readonly codes: Uint8Array;
  /** (blocks) f32 scales: int8 one per row, nf4 one per block. */
  readonly scales: Float32Array;
  /** Weights per scale: int8 the row length, nf4 its block size. */
  readonly blocksize: number;
}

/** The codes of an int8 / nf4 weight (views of its storage, not copies); null for float kinds. */
export function packedCodes(weight: QuantizedWeight): PackedCodes | null {
  if (weight instanceof Int8LinearWeight) {
    const { codes, scales, cols } = weight.q;
    const bytes = new Uint8Array(codes.buffer, codes.byteOffset, codes.length);
    return { kind: "int8", codes: bytes, scales, blocksize: cols };
  }
  if (weight instanceof Nf4LinearWeight) {
    const { packed, absmax, blocksize } = weight.q;
    return { kind: "nf4", codes: packed, scales: absmax, blocksize };
  }
  return null;
}

/** The 16-bit patterns of a bf16 / f16 weight (a view of its storage); null for other kinds. */
export function packedHalf(
  weight: QuantizedWeight,
): { kind: "bf16" | "f16"; bits: Uint16Array } | null {
  return weight instanceof Half16Weight ? { kind: weight.kind, bits: weight.bits } : null;
}

/**
 * An int8 / nf4 weight (out, in) over given codes and scales (kept as views, not copied): the
 * inverse of packedCodes, for codes that live elsewhere (quant/heap-codes.ts).
 */
export function weightFromCodes(
  packed: PackedCodes,
  shape: readonly [number, number],
): QuantizedWeight {
  const { codes, scales, blocksize } = packed;
  if (packed.kind === "int8") {
    const signed = new Int8Array(codes.buffer, codes.byteOffset, codes.length);
    return new Int8LinearWeight({ rows: shape[0], cols: shape[1], codes: signed, scales });
  }
  const numel = shape[0] * shape[1];
  return new Nf4LinearWeight({ numel, blocksize, packed: codes, absmax: scales }, shape);
}

/**
 * Keeps 16-bit checkpoint data (bf16 or f16 bit patterns, (out, in)) as-is, without a round trip
 * through f32: the way to hold a bf16 base model at 2 bytes per weight.
 */
export function weightFromHalfBits(
  kind: "bf16" | "f16",
  bits: Uint16Array,
  shape: readonly number[],
): QuantizedWeight {
  const checked = checkShape(`weightFromHalfBits(${kind})`, bits.length, shape);
  return new Half16Weight(kind, bits.slice(), checked);
}
