// The key/value cache of incremental decoding (CausalLM.createCache / forwardCached) and the parts
// of a cached step every decoder shares: per-row cache storage, the step scratch with its
// capacity, and attention of new queries against one row's cached keys.
//
// Layout: per layer, keys and values (B, Hkv, maxLength, D) — row b, kv head h holds its tokens
// contiguously, so one row's keys of one head are a (Tk, D) view whatever the other rows hold.
// Rows advance independently (lengths[b] tokens cached), so a batch may mix prompt lengths: the
// position of new token t of row b is lengths[b] + t (HF: cache_position / position_ids).
//
// Contract: the cache is heap memory allocated once by createCache; the step scratch grows only
// when a step needs more rows than any earlier one (prefill), never per decoded token; dispose()
// frees both. Nothing here reads or writes model weights.
// Legend: B cache rows, N rows of one step, Tn new tokens per row, Tk = past + Tn keys, H heads,
// Hkv kv heads, g = H / Hkv, D head dim, C hidden, V vocab, L layers.

import type { Kernels } from "../kernels/kernels.js";
import type { Heap } from "../tensor/heap.js";
import type { Tensor } from "../tensor/tensor.js";
import type { KvCache } from "./model.js";

/** What the cache and the shared step code need to know of an architecture. */
export interface CacheDims {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  hidden: number;
  vocab: number;
}

/** Rows, new tokens per row and logit rows a step scratch can hold. */
export interface StepCapacity {
  tokens: number;
  seqLen: number;
  logitRows: number;
}

/**
 * Scratch of cached steps, sized for a capacity and used through views of the first rows;
 * architectures extend it with their activations (allocated with tensor()).
 */
export class StepScratch {
  readonly capacity: StepCapacity;
  private readonly heap: Heap;
  private readonly owned: Tensor[] = [];
  readonly ids: Tensor; // (tokens) i32
  readonly positions: Tensor; // (tokens) i32, lengths[b] + t of each new token
  readonly lastHidden: Tensor; // (logitRows, C) each row's last new hidden state
  readonly logits: Tensor; // (logitRows, V)
  readonly scores: Tensor; // (H, seqLen, maxLength) one row's attention scores / probabilities

  constructor(heap: Heap, dims: CacheDims, capacity: StepCapacity, maxLength: number) {
    this.heap = heap;
    this.capacity = capacity;
    try {
      this.ids = this.tensor([capacity.tokens], "i32");
      this.positions = this.tensor([capacity.tokens], "i32");
      this.lastHidden = this.tensor([capacity.logitRows, dims.hidden]);
      this.logits = this.tensor([Math.max(capacity.logitRows, capacity.tokens), dims.vocab]);
      this.scores = this.tensor([dims.heads * capacity.seqLen * maxLength]);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  fits(need: StepCapacity): boolean {
    const c = this.capacity;
    return need.tokens <= c.tokens && need.seqLen <= c.seqLen && need.logitRows <= c.logitRows;
  }

  /** A new heap tensor the scratch owns. A subclass constructor must dispose() when one throws. */
  protected tensor(shape: number[], dtype: "f32" | "i32" = "f32"): Tensor {
    const tensor = this.heap.tensor(shape, dtype);
    this.owned.push(tensor);
    return tensor;
  }

  get bytes(): number {
    return this.owned.reduce((sum, t) => sum + t.byteLength, 0);
  }

  dispose(): void {
    for (const tensor of this.owned) tensor.dispose();
    this.owned.length = 0;
  }
}

/** The KvCache of a DecoderModel: keys and values per layer, per-row lengths, step scratch. */
export class DecoderKvCache<S extends StepScratch> implements KvCache {
  readonly batchSize: number;
  readonly maxLength: number;
  /** The model that created the cache (a cache never crosses models). */
  readonly owner: object;
  readonly dims: CacheDims;
  readonly keys: Tensor[] = []; // per layer (B, Hkv, maxLength, D)
  readonly values: Tensor[] = []; // per layer (B, Hkv, maxLength, D)
  readonly lengths: Int32Array; // (B) tokens cached per row
  private scratch: S | null = null;
  private live = true;

  constructor(heap: Heap, owner: object, dims: CacheDims, batchSize: number, maxLength: number) {
    this.owner = owner;
    this.dims = dims;
    this.batchSize = batchSize;
    this.maxLength = maxLength;
    this.lengths = new Int32Array(batchSize);
    const shape = [batchSize, dims.kvHeads, maxLength, dims.headDim];
    try {
      for (let l = 0; l < dims.layers; l++) {
        this.keys.push(heap.tensor(shape));
        this.values.push(heap.tensor(shape));
      }
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  get disposed(): boolean {
    return !this.live;
  }

  length(row: number): number {
    if (!Number.isInteger(row) || row < 0 || row >= this.batchSize) {
      throw new Error(`KvCache.length: row ${row} is outside [0, ${this.batchSize})`);
    }
    return this.lengths[row];
  }

  get bytes(): number {
    const kv = [...this.keys, ...this.values].reduce((sum, t) => sum + t.byteLength, 0);
    return kv + (this.scratch?.bytes ?? 0);
  }

  /** The step scratch, (re)allocated by `create` when `need` exceeds the current capacity. */
  stepScratch(need: StepCapacity, create: (capacity: StepCapacity) => S): S {
    if (this.scratch?.fits(need)) return this.scratch;
    const old = this.scratch?.capacity;
    const capacity: StepCapacity = {
      tokens: Math.max(need.tokens, old?.tokens ?? 0),
      seqLen: Math.max(need.seqLen, old?.seqLen ?? 0),
      logitRows: Math.max(need.logitRows, old?.logitRows ?? 0),
    };
    this.scratch?.dispose();
    this.scratch = null;
    this.scratch = create(capacity);
    return this.scratch;
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
    this.keys.length = 0;
    this.values.length = 0;
    this.scratch?.dispose();
    this.scratch = null;
    this.live = false;
  }
}

/** The (heads, Tn, D) view of step row n's queries, keys or values (layouts differ per model). */
export type HeadsOfRow = (n: number) => Tensor;

/**
 * Appends the new keys and values of layer `layer` to the cache (at each row's current length)
 * and attends: the Tn new queries of step row n (cache row rows[n]) see that row's Tk = past + Tn
 * cached keys causally (key j visible to query i when j <= past + i). Grouped-query heads: query
 * head h uses kv head h / g (HF's repeat_kv). The cache lengths are NOT advanced here (the caller
 * advances them once every layer has run).
 *   q(n) (H, Tn, D), k(n), v(n) (Hkv, Tn, D); out (N, H, Tn, D); scores: H * Tn * maxLength floats.
 */
export function cachedAttention(
  kernels: Kernels,
  cache: DecoderKvCache<StepScratch>,
  layer: number,
  rows: readonly number[],
  q: HeadsOfRow,
  k: HeadsOfRow,
  v: HeadsOfRow,
  out: Tensor,
  scores: Tensor,
  scale: number,
  window: number | null = null,
): void {
  const { heads: H, kvHeads: Hkv, headDim: D } = cache.dims;
  const g = H / Hkv;
  const Tn = out.shape[2];
  const M = cache.maxLength;
  const keys = cache.keys[layer];
  const values = cache.values[layer];
  for (let n = 0; n < rows.length; n++) {
    const b = rows[n];
    const past = cache.lengths[b];
    const Tk = past + Tn;
    const [qRow, kRow, vRow] = [q(n), k(n), v(n)];
    for (let h = 0; h < Hkv; h++) {
      const slot = ((b * Hkv + h) * M + past) * D; // first new position of (b, h)
      kernels.copy(keys.view([Tn, D], slot), kRow.view([Tn, D], h * Tn * D));
      kernels.copy(values.view([Tn, D], slot), vRow.view([Tn, D], h * Tn * D));
    }
    const rowScores = scores.view([1, H, Tn, Tk]);
    for (let h = 0; h < Hkv; h++) {
      const kvAt = (b * Hkv + h) * M * D;
      const qHeads = qRow.view([g * Tn, D], h * g * Tn * D); // the g query heads of kv head h
      kernels.matmul(scores.view([g * Tn, Tk], h * g * Tn * Tk), qHeads, keys.view([Tk, D], kvAt), {
        transB: true,
      });
    }
    if (window !== null) kernels.maskOutsideWindow(rowScores.view([H, Tn, Tk]), window);
    // causal offset Tk - Tq = past: new query i sees keys 0..past+i
    kernels.attentionSoftmax(rowScores, rowScores, { scale, causal: true });
    for (let h = 0; h < Hkv; h++) {
      const kvAt = (b * Hkv + h) * M * D;
      const outAt = (n * H + h * g) * Tn * D;
      kernels.matmul(
        out.view([g * Tn, D], outAt),
        scores.view([g * Tn, Tk], h * g * Tn * Tk),
        values.view([Tk, D], kvAt),
      );
    }
  }
}
