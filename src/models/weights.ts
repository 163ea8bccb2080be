// Storage of the FROZEN linear weights of a model: f32, 16-bit (bf16 / f16 heap tensors) or
// quantized (int8 row-wise absmax, NF4 blockwise; quant/quantized-linear.ts, kept off the engine
// heap as that module stores them). Compute stays f32: a compressed weight is expanded into the
// model's ONE shared f32 scratch tensor (the size of its largest compressed linear weight) right
// before each matmul, so engine memory = compressed weights + one f32 weight, never all f32 copies.
// The one exception: kernels with bf16Matmul (kernels.ts) take a bf16 weight as it is (one on the
// heap itself; an offloaded one copied into the scratch's bytes, WeightScratch.bf16View).
//
// Layouts: heap tensors keep the stored (checkpoint) layout — (out, in), or (in, out) for GPT-2's
// Conv1D (fanInFanOut). Quantized weights are always (out, in) (a Conv1D weight is transposed
// before quantizing) so that int8's scales are per OUTPUT channel, as LLM.int8() defines them.
// Embeddings, norms and biases are not handled here: they stay f32 (the token embedding table may
// live off the heap, models/embedding-table.ts).
//
// Offloaded weights (WeightLoadOptions.offloadFrozen, for models whose frozen weights do not fit
// the heap with room for training): f32 / bf16 / f16 weights kept in host memory (plain typed
// arrays, quant/quantized-linear.ts) in their STORED layout, expanded into the scratch per matmul
// like quantized ones; the values a matmul sees are the same as with the weight on the heap.
// A weight given a row block (the lm_head: (vocab, hidden), the largest by far) is expanded only
// rows [r0, r1) at a time when it is off the heap (models/sliced-linear.ts), so the scratch holds
// one block of it, never the whole (vocab, hidden) f32 copy.
//
// Contract: gradients of weights (LoRA-GA estimation) are always f32 and in the stored layout, and
// need no weight values (dW = dY^T X); they are computed for float weights (f32 / 16-bit, on the
// heap or offloaded), never for int8 / nf4. LoRA-GA's base offset W' = W - s B A must be written (writeF32) BEFORE quantizing: the
// two-stage flow is estimate on float weights -> init + offset -> quantizeLinears.
//
// On an engine whose tensors live on a device (Kernels.deferred: webgpu) nothing is expanded on
// the host per matmul: 16-bit heap weights are widened by kernels.convert, and int8 / nf4 codes
// move onto the heap at their first expand (quant/heap-codes.ts) and are expanded by
// kernels.dequantize from then on. An offloaded bf16 / f16 weight crosses to the device in its
// 2-byte form at each use (the scratch's 16-bit staging tensor, uploaded) and is widened there by
// kernels.convert; an offloaded f32 weight (and an int8 / nf4 one expanded in row blocks, which
// no model does by default) is expanded on the host and uploaded.

import type { Kernels } from "../kernels/kernels.js";
import { convert } from "../kernels/ref/convert.js";
import { HeapCodesWeight } from "../quant/heap-codes.js";
import {
  packedHalf,
  type QuantizedWeight,
  type QuantKind,
  quantizeWeight,
} from "../quant/quantized-linear.js";
import { f16ToF32 } from "../tensor/dtype.js";
import type { Heap } from "../tensor/heap.js";
import { Tensor } from "../tensor/tensor.js";
import type { LinearLayer } from "./common.js";

export type WeightStorageKind = QuantKind;
/** Dtype of frozen linear weights kept on the heap. */
type WeightDtype = "f32" | "bf16" | "f16";
/** Off-heap quantization kinds of frozen linear weights. */
export type QuantizeKind = "int8" | "nf4";
/**
 * Where frozen weights live: "on" keeps every linear weight and the token embedding off the heap
 * (at weightDtype, or quantized), "off" keeps today's layout, "auto" offloads when the frozen
 * weights would take more than OFFLOAD_AUTO_SHARE of the heap's limit on it.
 */
export type OffloadMode = "auto" | "on" | "off";
/** "auto" offloads when heap-stored frozen weights would exceed this share of the heap limit. */
const OFFLOAD_AUTO_SHARE = 0.5;

/** How loadModel stores the linear weights (embeddings, norms and biases stay f32). */
export interface WeightLoadOptions {
  /** Dtype of every linear weight not tied to an embedding (lm_head included). Default f32. */
  weightDtype?: WeightDtype;
  /** Quantize every decoder linear weight on load (lm_head is never quantized, as bitsandbytes). */
  quantize?: QuantizeKind;
  /** Frozen weights in host memory instead of the engine heap (OffloadMode). Default "auto". */
  offloadFrozen?: OffloadMode;
}

/**
 * The one f32 tensor compressed weights are expanded into, plus the small output buffer of the
 * row-block path (sliced-linear.ts); both grow only at load / quantize / setRowBlock time. On a
 * deferred engine also a 16-bit staging tensor for offloaded bf16 / f16 weights (halfView), made
 * at the first expand that needs it, as large as the f32 scratch in elements.
 */
export class WeightScratch {
  readonly heap: Heap;
  private tensor: Tensor | null = null;
  private out: Tensor | null = null;
  private half: Tensor | null = null;

  constructor(heap: Heap) {
    this.heap = heap;
  }

  get bytes(): number {
    return (
      (this.tensor?.byteLength ?? 0) + (this.out?.byteLength ?? 0) + (this.half?.byteLength ?? 0)
    );
  }

  /** Makes room for `size` f32 elements (frees the old tensor first, so peak is the larger one). */
  reserve(size: number): void {
    if (this.tensor !== null && this.tensor.size >= size) return;
    this.tensor?.dispose();
    this.tensor = null;
    this.tensor = this.heap.tensor([size], "f32");
  }

  view(shape: readonly number[]): Tensor {
    if (this.tensor === null) throw new Error("internal: weight scratch used before reserve()");
    return this.tensor.view(shape);
  }

  /**
   * The 16-bit staging tensor as `shape` of `kind` (re-made when the kind differs or it is too
   * small: it holds as many elements as the f32 scratch).
   */
  halfView(kind: "bf16" | "f16", shape: readonly number[]): Tensor {
    const size = shape[0] * shape[1];
    if (this.half === null || this.half.dtype !== kind || this.half.size < size) {
      this.half?.dispose();
      this.half = null;
      this.half = this.heap.tensor([Math.max(size, this.tensor?.size ?? 0)], kind);
    }
    return this.half.view(shape);
  }

  /**
   * The f32 scratch's own bytes as a bf16 tensor of `shape` (they hold twice as many bf16
   * elements): where an offloaded bf16 weight is copied as it is for an engine with
   * Kernels.bf16Matmul, which then does not use the f32 scratch in that matmul.
   */
  bf16View(shape: readonly [number, number]): Tensor {
    if (this.tensor === null) throw new Error("internal: weight scratch used before reserve()");
    if (shape[0] * shape[1] > 2 * this.tensor.size)
      throw new Error(`internal: bf16 view ${shape.join(" x ")} exceeds the weight scratch`);
    return new Tensor(this.heap, this.tensor.ptr, shape, "bf16", false);
  }

  /** Makes room for `size` f32 elements of row-block outputs (as reserve). */
  reserveOut(size: number): void {
    if (this.out !== null && this.out.size >= size) return;
    this.out?.dispose();
    this.out = null;
    this.out = this.heap.tensor([size], "f32");
  }

  /**
   * Re-allocates both buffers at exactly `size` / `outSize` elements when they differ (0: none),
   * so that a smaller need (a smaller row block) frees memory; reserve never shrinks.
   */
  fit(size: number, outSize: number): void {
    this.half?.dispose(); // made again at its next use, at the new size
    this.half = null;
    if ((this.tensor?.size ?? 0) !== size) {
      this.tensor?.dispose();
      this.tensor = null;
      if (size > 0) this.tensor = this.heap.tensor([size], "f32");
    }
    if ((this.out?.size ?? 0) !== outSize) {
      this.out?.dispose();
      this.out = null;
      if (outSize > 0) this.out = this.heap.tensor([outSize], "f32");
    }
  }

  /** The row-block output buffer as `shape` (at most the reserved size). */
  outView(shape: readonly number[]): Tensor {
    if (this.out === null) throw new Error("internal: row-block output used before reserveOut()");
    return this.out.view(shape);
  }

  get outSize(): number {
    return this.out?.size ?? 0;
  }

  dispose(): void {
    this.tensor?.dispose();
    this.tensor = null;
    this.out?.dispose();
    this.out = null;
    this.half?.dispose();
    this.half = null;
  }
}

/**
 * The row-block path's output buffer (sliced-linear.ts) is this share of one block of the weight:
 * (in / ROW_BLOCK_OUT_SHARE, block rows) f32, so input rows pass through it in groups of
 * in / ROW_BLOCK_OUT_SHARE (at least one).
 */
const ROW_BLOCK_OUT_SHARE = 4;

let f16Table: Float32Array | null = null; // (65536) every f16 bit pattern's exact f32 value

/**
 * out[i] = the f32 value of 16-bit pattern bits[i], exactly. bf16 is the top half of an f32 (a
 * 16-bit shift through an integer view); f16 goes through a 65536-entry table built once from
 * tensor/dtype.ts' f16ToF32 (a lookup is much cheaper than the scalar conversion per element).
 */
function widenHalf(out: Float32Array, bits: Uint16Array, kind: "bf16" | "f16"): void {
  const n = bits.length;
  if (kind === "bf16") {
    const wide = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < n; i++) wide[i] = bits[i] << 16;
    return;
  }
  f16Table ??= Float32Array.from({ length: 65536 }, (_, b) => f16ToF32(b));
  const table = f16Table;
  for (let i = 0; i < n; i++) out[i] = table[bits[i]];
}

/** data (rows, cols) -> (cols, rows). */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length); // (cols, rows)
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** The frozen weight of one linear layer, in whichever storage it currently has. */
export class FrozenWeight {
  /** HF parameter name (the key in model.params while the weight is on the heap). */
  readonly name: string;
  /** Stored layout shape: (out, in), or (in, out) when fanInFanOut. */
  readonly shape: readonly [number, number];
  readonly size: number;
  readonly fanInFanOut: boolean;
  /** True when the weight is another parameter (a tied lm_head = the embedding): never re-stored. */
  readonly shared: boolean;
  private readonly params: Map<string, Tensor>;
  /** The model's shared expansion scratch (read by sliced-linear.ts for its output buffer). */
  readonly scratch: WeightScratch;
  /**
   * Off-heap storage, or null when the weight is a heap tensor in `params`: int8 / nf4 in (out, in),
   * offloaded f32 / bf16 / f16 in the stored layout (see storedLayout). int8 / nf4 codes that
   * moved onto the heap for a deferred engine are a HeapCodesWeight.
   */
  private quantized: QuantizedWeight | null;
  /** Loaded off the heap in a float kind (offloadFrozen): re-stored float kinds stay off it. */
  private readonly offloaded: boolean;
  /** Rows per expansion when off the heap (setRowBlock), or null: the whole weight at once. */
  private requestedRowBlock: number | null;

  /** rowBlock: as setRowBlock (the lm_head's vocabulary slices), null for every other weight. */
  constructor(
    name: string,
    shape: readonly [number, number],
    fanInFanOut: boolean,
    shared: boolean,
    params: Map<string, Tensor>,
    quantized: QuantizedWeight | null,
    scratch: WeightScratch,
    rowBlock: number | null = null,
  ) {
    this.name = name;
    this.shape = shape;
    this.size = shape[0] * shape[1];
    this.fanInFanOut = fanInFanOut;
    this.shared = shared;
    this.params = params;
    this.quantized = quantized;
    this.offloaded = quantized !== null && storedLayout(quantized.kind);
    this.scratch = scratch;
    this.requestedRowBlock = rowBlock;
    if (quantized === null && !params.has(name))
      throw new Error(`internal: parameter ${name} not loaded`);
    this.reserveScratch();
  }

  /**
   * Rows of the (out, in) weight per expansion when it is expanded in row blocks (expandRows),
   * or null when it is expanded whole (expand). Row blocks apply to a weight given a block
   * (setRowBlock) while it lives off the heap in the (out, in) layout and has more rows than one
   * block.
   */
  get rowBlock(): number | null {
    const block = this.requestedRowBlock;
    if (block === null || this.quantized === null || block >= this.shape0()) return null;
    return this.expandsOutIn() ? block : null;
  }

  /**
   * Expands the weight `rows` rows at a time while it is off the heap (null or Infinity: whole);
   * grows the scratch if the new block needs more.
   */
  setRowBlock(rows: number | null): void {
    if (rows !== null && !(rows === Number.POSITIVE_INFINITY || Number.isSafeInteger(rows)))
      throw new Error(`internal: row block of ${this.name} must be an integer, got ${rows}`);
    this.requestedRowBlock = rows === null || rows === Number.POSITIVE_INFINITY ? null : rows;
    this.reserveScratch();
  }

  /**
   * Rows [r0, r1) of the (out, in) weight in f32, in the shared scratch (valid until the next
   * expand of any layer, by `kernels`: uploaded for a deferred engine); r1 - r0 is at most
   * rowBlock. Only for a weight expanded in row blocks.
   */
  expandRows(kernels: Kernels, r0: number, r1: number): Tensor {
    const block = this.rowBlock;
    if (block === null || r1 - r0 > block)
      throw new Error(`internal: ${this.name} is not expanded in blocks of ${r1 - r0} rows`);
    const asIs = this.bf16AsIs(kernels, r0, r1);
    if (asIs !== null) return asIs;
    const w = this.scratch.view([r1 - r0, this.shape1()]);
    if (!this.widenOnDevice(kernels, w, r0, r1)) {
      (this.quantized as QuantizedWeight).dequantizeRowsInto(w, r0, r1);
      kernels.upload(w); // written by the host
    }
    return w;
  }

  /** True when the weight lives off the engine heap (quantized or offloaded). */
  get offHeap(): boolean {
    return this.quantized !== null && !(this.quantized instanceof HeapCodesWeight);
  }

  get kind(): WeightStorageKind {
    if (this.quantized !== null) return this.quantized.kind;
    const dtype = this.heapTensor().dtype;
    if (dtype === "f32" || dtype === "bf16" || dtype === "f16") return dtype;
    throw new Error(`internal: linear weight ${this.name} has dtype ${dtype}`);
  }

  /** Bytes of the weight on the engine heap and off it (quantized codes + scales). */
  get bytes(): { heap: number; offHeap: number } {
    if (this.quantized instanceof HeapCodesWeight)
      return { heap: this.quantized.bytes, offHeap: 0 };
    if (this.quantized !== null) return { heap: 0, offHeap: this.quantized.bytes };
    return { heap: this.heapTensor().byteLength, offHeap: 0 };
  }

  /**
   * The weight for one matmul by `kernels`: the parameter itself when f32 (or bf16 and
   * Kernels.bf16Matmul: they take it as it is), else the shared f32 scratch filled now (valid
   * until the next expand of any layer; on a deferred engine, by its kernels: see the top of this
   * file). outIn: whether w is (out, in).
   */
  expand(kernels: Kernels): { w: Tensor; outIn: boolean } {
    if (this.rowBlock !== null)
      throw new Error(`internal: ${this.name} is expanded in row blocks (expandRows)`);
    if (this.quantized !== null) {
      const kind = this.quantized.kind;
      const outIn = storedLayout(kind) ? !this.fanInFanOut : true;
      const asIs = this.bf16AsIs(kernels, 0, this.shape0());
      if (asIs !== null) return { w: asIs, outIn };
      const w = this.scratch.view(this.offHeapShape(kind));
      if (kernels.dequantize !== undefined && (kind === "int8" || kind === "nf4")) {
        const codes =
          this.quantized instanceof HeapCodesWeight
            ? this.quantized
            : new HeapCodesWeight(this.quantized, kernels.heap);
        this.quantized = codes;
        codes.expandOn(kernels, w);
      } else if (!this.widenOnDevice(kernels, w, 0, w.shape[0])) {
        this.quantized.dequantizeInto(w);
        kernels.upload(w); // written by the host
      }
      return { w, outIn };
    }
    const t = this.heapTensor();
    if (t.dtype === "f32" || (t.dtype === "bf16" && kernels.bf16Matmul === true))
      return { w: t, outIn: !this.fanInFanOut };
    const w = this.scratch.view(this.shape);
    if (kernels.deferred) kernels.convert(w, t);
    else widenHalf(w.f32(), t.u16(), t.dtype as "bf16" | "f16");
    return { w, outIn: !this.fanInFanOut };
  }

  /**
   * Rows [r0, r1) of an offloaded bf16 weight copied as they are into the scratch's bytes
   * (WeightScratch.bf16View), for an engine whose matmul takes a bf16 b (Kernels.bf16Matmul):
   * what the engine is given for the same weight on the heap, so offloading still changes no
   * value, and the weight is never widened. Null, with nothing done, for any other engine or
   * storage, and for a tied head: on the heap it is the f32 embedding, so it is widened here too.
   */
  private bf16AsIs(kernels: Kernels, r0: number, r1: number): Tensor | null {
    if (kernels.bf16Matmul !== true || this.quantized === null || this.shared) return null;
    const half = packedHalf(this.quantized);
    if (half === null || half.kind !== "bf16") return null;
    const cols = this.shape1();
    const staging = this.scratch.bf16View([r1 - r0, cols]);
    staging.u16().set(half.bits.subarray(r0 * cols, r1 * cols));
    return staging;
  }

  /**
   * On a deferred engine, rows [r0, r1) of an offloaded bf16 / f16 weight into w (f32, those
   * rows) on the device: the 16-bit patterns are copied into the scratch's staging tensor and
   * uploaded (2 bytes per weight where the host expansion sends 4), then widened by
   * kernels.convert, which gives the host's widening bit for bit (test/kernels/webgpu-weights).
   * False, with nothing done, for any other engine or storage.
   */
  private widenOnDevice(kernels: Kernels, w: Tensor, r0: number, r1: number): boolean {
    if (!kernels.deferred || this.quantized === null) return false;
    const half = packedHalf(this.quantized);
    if (half === null) return false;
    const cols = this.shape1();
    const staging = this.scratch.halfView(half.kind, [r1 - r0, cols]);
    staging.u16().set(half.bits.subarray(r0 * cols, r1 * cols));
    kernels.upload(staging); // written by the host
    kernels.convert(w, staging);
    return true;
  }

  /** Frees what the weight holds on the heap apart from model.params (moved int8 / nf4 codes). */
  dispose(): void {
    this.replaceStorage(null);
  }

  /** An f32 copy of the weight in the stored layout (dequantized / widened when compressed). */
  readF32(): Float32Array {
    if (this.quantized !== null) {
      const shape = this.offHeapShape(this.quantized.kind);
      const [rows, cols] = shape;
      const block = this.rowBlock ?? rows; // through the scratch, one block of rows at a time
      const data = new Float32Array(this.size); // shape
      for (let r = 0; r < rows; r += block) {
        const n = Math.min(block, rows - r);
        const w = this.scratch.view([n, cols]);
        this.quantized.dequantizeRowsInto(w, r, r + n);
        data.set(w.f32(), r * cols);
      }
      return this.fanInFanOut && !storedLayout(this.quantized.kind)
        ? transpose2d(data, rows, cols)
        : data;
    }
    const t = this.heapTensor();
    if (t.dtype === "f32") return t.toArray();
    const out = new Float32Array(this.size);
    convert(out, "f32", t.u16(), t.dtype as "bf16" | "f16");
    return out;
  }

  /** Overwrites the weight from f32 values (stored layout), re-encoded in the current storage. */
  writeF32(data: Float32Array): void {
    if (data.length !== this.size) {
      throw new Error(`${this.name}: writing ${data.length} values into a weight of ${this.size}`);
    }
    if (this.quantized !== null) {
      if (this.shared) {
        // a new off-heap object would leave the embedding table on the old one
        throw new Error(
          `${this.name} is shared with the embedding (tied) and kept off the heap: it cannot be rewritten`,
        );
      }
      this.replaceStorage(this.quantize(this.quantized.kind, data));
      return;
    }
    const t = this.heapTensor();
    if (t.dtype === "f32") t.f32().set(data);
    else convert(t.u16(), t.dtype as "bf16" | "f16", data, "f32");
  }

  /**
   * Re-stores the weight as `kind` from its current f32 values. Heap kinds replace the entry in
   * model.params; int8 / nf4 remove it (the codes live off the heap).
   */
  restore(kind: WeightStorageKind): void {
    if (kind === this.kind) return;
    if (this.shared)
      throw new Error(
        `${this.name} is shared with another parameter (tied embedding) and cannot be re-stored as ${kind}`,
      );
    const data = this.readF32();
    const old = this.params.get(this.name) ?? null;
    if (kind === "int8" || kind === "nf4" || this.offloaded) {
      // quantized kinds, or any kind for an offloaded weight (it stays off the heap)
      this.replaceStorage(this.quantize(kind, data));
      this.reserveScratch();
      this.params.delete(this.name);
    } else {
      const heap = this.scratch.heap;
      const t = heap.tensor(this.shape, kind);
      if (kind === "f32") t.f32().set(data);
      else {
        convert(t.u16(), kind, data, "f32");
        this.scratch.reserve(this.size);
      }
      this.replaceStorage(null);
      this.params.set(this.name, t);
    }
    old?.dispose();
  }

  /** Sets the off-heap storage, freeing codes the old one kept on the heap. */
  private replaceStorage(quantized: QuantizedWeight | null): void {
    if (this.quantized instanceof HeapCodesWeight) this.quantized.dispose();
    this.quantized = quantized;
  }

  /** Off-heap storage of `data` (stored layout) as `kind`, in the layout storedLayout gives. */
  private quantize(kind: QuantKind, data: Float32Array): QuantizedWeight {
    if (storedLayout(kind)) return quantizeWeight(kind, data, this.shape);
    const outIn = this.fanInFanOut ? transpose2d(data, this.shape[0], this.shape[1]) : data;
    return quantizeWeight(kind, outIn, this.offHeapShape(kind));
  }

  /**
   * Room in the scratch for what expand / expandRows write: one row block (and its output
   * buffer, 1 / ROW_BLOCK_OUT_SHARE of it) or the whole weight; nothing for an f32 heap weight.
   */
  private reserveScratch(): void {
    const need = this.scratchNeed();
    this.scratch.reserve(need.size);
    if (need.outSize > 0) this.scratch.reserveOut(need.outSize);
  }

  /** f32 elements expand / expandRows need in the scratch, and in its row-block output buffer. */
  scratchNeed(): { size: number; outSize: number } {
    const block = this.rowBlock;
    if (block !== null)
      return {
        size: block * this.shape1(),
        outSize: Math.max(1, Math.floor(this.shape1() / ROW_BLOCK_OUT_SHARE)) * block,
      };
    return { size: this.quantized !== null || this.kind !== "f32" ? this.size : 0, outSize: 0 };
  }

  /** Whether the expansion is (out, in) (rows = output features). */
  private expandsOutIn(): boolean {
    if (this.quantized === null) return !this.fanInFanOut;
    return storedLayout(this.quantized.kind) ? !this.fanInFanOut : true;
  }

  /** Rows / columns of the expansion. */
  private shape0(): number {
    return this.expandShape()[0];
  }

  private shape1(): number {
    return this.expandShape()[1];
  }

  private expandShape(): readonly [number, number] {
    return this.quantized === null ? this.shape : this.offHeapShape(this.quantized.kind);
  }

  /** Shape of the off-heap data (and of its expansion in the scratch). */
  private offHeapShape(kind: QuantKind): readonly [number, number] {
    if (storedLayout(kind) || !this.fanInFanOut) return this.shape;
    return [this.shape[1], this.shape[0]];
  }

  private heapTensor(): Tensor {
    const t = this.params.get(this.name);
    if (t === undefined) throw new Error(`internal: parameter ${this.name} not on the heap`);
    return t;
  }
}

/**
 * Whether off-heap weights of `kind` keep the stored layout: float kinds do (an offloaded weight
 * expands to exactly what the heap path hands the matmul); int8 / nf4 are (out, in) so that their
 * scales are per output channel.
 */
function storedLayout(kind: QuantKind): boolean {
  return kind === "f32" || kind === "bf16" || kind === "f16";
}

/** Looks up a layer or throws naming a few valid paths. */
function layerAt(
  layers: ReadonlyMap<string, LinearLayer>,
  path: string,
  what: string,
): LinearLayer {
  const layer = layers.get(path);
  if (layer === undefined) {
    const some = [...layers.keys()].slice(0, 4).join(", ");
    throw new Error(`${what}: no linear layer "${path}" in this model (e.g. ${some}, ...)`);
  }
  return layer;
}

/** The CausalLM weight-storage methods, shared by every architecture. */
export class LinearWeights {
  private readonly layers: ReadonlyMap<string, LinearLayer>;
  readonly scratch: WeightScratch;

  constructor(layers: ReadonlyMap<string, LinearLayer>, scratch: WeightScratch) {
    this.layers = layers;
    this.scratch = scratch;
  }

  storage(path: string): WeightStorageKind {
    return layerAt(this.layers, path, "weightStorage").weight.kind;
  }

  read(path: string): Float32Array {
    return layerAt(this.layers, path, "readLinearWeight").weight.readF32();
  }

  write(path: string, data: Float32Array): void {
    layerAt(this.layers, path, "writeLinearWeight").weight.writeF32(data);
  }

  /** Default paths: every linear layer except lm_head and weights shared with an embedding. */
  restore(kind: WeightStorageKind, paths?: readonly string[]): void {
    const chosen =
      paths ??
      [...this.layers.values()]
        .filter((l) => l.info.path !== "lm_head" && !l.weight.shared)
        .map((l) => l.info.path);
    for (const path of chosen) layerAt(this.layers, path, "quantizeLinears").weight.restore(kind);
  }

  /** Frees the scratch and what the weights hold on the heap apart from model.params. */
  dispose(): void {
    for (const layer of this.layers.values()) layer.weight.dispose();
    this.scratch.dispose();
  }

  /**
   * Sizes the shared scratch to exactly what the layers need now (after a row block changed: a
   * smaller block frees the rest).
   */
  fitScratch(): void {
    let size = 0;
    let outSize = 0;
    for (const layer of this.layers.values()) {
      const need = layer.weight.scratchNeed();
      size = Math.max(size, need.size);
      outSize = Math.max(outSize, need.outSize);
    }
    this.scratch.fit(size, outSize);
  }

  /** Bytes of the linear weights by storage kind, plus the scratch. */
  bytes(): { heap: number; offHeap: number; scratch: number } {
    let heap = 0;
    let offHeap = 0;
    for (const layer of this.layers.values()) {
      if (layer.weight.shared) continue;
      const b = layer.weight.bytes;
      heap += b.heap;
      offHeap += b.offHeap;
    }
    return { heap, offHeap, scratch: this.scratch.bytes };
  }
}

/** Where and how loadParams stores each parameter (models/common.ts). */
export interface StorageAtLoad {
  /** Storage kind of a parameter ("f32" for everything but compressed frozen weights). */
  kindOf(name: string): WeightStorageKind;
  /** True when a float-kind parameter goes off the heap (offloadFrozen); int8 / nf4 always do. */
  offHeap(name: string): boolean;
  /** Whether the frozen weights were offloaded (decided once, for the whole model). */
  readonly offloaded: boolean;
}

/** The frozen parameters of a model as loadDecoderParams sees them. */
export interface FrozenLayout {
  specs: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** Linear weights (not embeddings): stored as weightDtype or quantized. */
  isLinear(name: string): boolean;
  /** The output projection (never quantized). */
  isHead(name: string): boolean;
  /** The token embedding table (offloadable; other embeddings, norms and biases stay f32). */
  tokenEmbedding: string;
  /** The checkpoint's dtype of a tensor ("BF16", "F32", ...), when known. */
  storedDtype(name: string): string | undefined;
  /** The engine heap's limit in bytes ("auto" compares the weights against it). */
  heapLimit: number;
}

const STORAGE_BYTES: Record<WeightStorageKind, number> = {
  f32: 4,
  bf16: 2,
  f16: 2,
  int8: 0,
  nf4: 0,
};

/**
 * Storage of each parameter at load: decoder linears as `quantize`, else `weightDtype`; everything
 * else f32 on the heap. With offloading (offloadFrozen "on", or "auto" when the heap-stored
 * parameters would exceed OFFLOAD_AUTO_SHARE of the heap limit), every linear weight and the token
 * embedding go off the heap: linears as on the heap (weightDtype or quantized), the embedding at
 * weightDtype when the checkpoint stores it in that 16-bit dtype (lossless), else f32 as on the
 * heap. So offloading changes where the frozen weights live, never the values a matmul sees.
 */
export function storageAtLoad(options: WeightLoadOptions, layout: FrozenLayout): StorageAtLoad {
  const dtype = options.weightDtype ?? "f32";
  const linearKind = (name: string): WeightStorageKind =>
    options.quantize !== undefined && !layout.isHead(name) ? options.quantize : dtype;
  let heapBytes = 0;
  for (const spec of layout.specs) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    heapBytes += size * (layout.isLinear(spec.name) ? STORAGE_BYTES[linearKind(spec.name)] : 4);
  }
  const mode = options.offloadFrozen ?? "auto";
  if (mode !== "auto" && mode !== "on" && mode !== "off")
    throw new Error(`offloadFrozen must be "auto", "on" or "off", got ${String(mode)}`);
  const offloaded =
    mode === "on" || (mode === "auto" && heapBytes > OFFLOAD_AUTO_SHARE * layout.heapLimit);
  const offloadable = (name: string) => layout.isLinear(name) || name === layout.tokenEmbedding;
  return {
    offloaded,
    kindOf: (name) => {
      if (layout.isLinear(name)) return linearKind(name);
      const lossless = layout.storedDtype(name) === (dtype === "bf16" ? "BF16" : "F16");
      return offloaded && name === layout.tokenEmbedding && lossless ? dtype : "f32";
    },
    offHeap: (name) => offloaded && offloadable(name),
  };
}

/** An f32 copy of an f32 / bf16 / f16 heap tensor. */
export function tensorToF32(t: Tensor): Float32Array {
  if (t.dtype === "f32") return t.toArray();
  if (t.dtype !== "bf16" && t.dtype !== "f16")
    throw new Error(`tensorToF32: ${t.toString()} is not a float tensor`);
  const out = new Float32Array(t.size);
  convert(out, "f32", t.u16(), t.dtype);
  return out;
}

/** Writes f32 values into an f32 / bf16 / f16 heap tensor (16-bit: rounded to nearest even). */
export function writeF32ToTensor(t: Tensor, data: Float32Array): void {
  if (data.length !== t.size)
    throw new Error(`writeF32ToTensor: ${data.length} values for ${t.toString()}`);
  if (t.dtype === "f32") t.f32().set(data);
  else if (t.dtype === "bf16" || t.dtype === "f16") convert(t.u16(), t.dtype, data, "f32");
  else throw new Error(`writeF32ToTensor: ${t.toString()} is not a float tensor`);
}
