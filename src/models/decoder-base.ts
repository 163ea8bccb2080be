// The CausalLM plumbing every decoder-only architecture shares, so that an architecture file holds
// only what is its own: config -> dims, parameter spec, activation plan, forward and backward.
//
//   DecoderPlan   the buffers at the model's boundary (token ids, key lengths, shifted targets,
//                 one chunk of logits, per-row losses) and ownership of every tensor a plan
//                 allocates; an architecture's plan extends it with its saved activations and
//                 scratch.
//   DecoderModel  the CausalLM methods: linear-layer registry (linears, setAdapter, the weight
//                 storage methods), memory options, re-planning per (B, T), forward =
//                 forwardPass -> lm_head on every row, lossAndGrads = forwardPass -> per chunk of
//                 rows: lm_head + cross-entropy + head backward (headLoss, lm-head.ts: on the
//                 counted rows only when many labels are ignored) -> backwardPass, tokenLosses =
//                 forwardPass -> headLoss, dispose; createCache / forwardCached = checks, per-row
//                 positions -> forwardStep -> (last rows) -> headStep.
//   loadDecoderParams  loadParams with the load-time storage of linear weights (weights.ts).
//
// Contract: activations are planned once per (B, T) and reused; a batch of another shape, or new
// memory options, frees the plan and builds a new one (an explicit re-plan, never per step). Loss
// is transformers' ForCausalLMLoss: labels shifted by one, IGNORE_INDEX skipped, mean over the
// counted tokens; the (tokens, vocab) logits never exist whole in lossAndGrads and tokenLosses.
// Cached decoding (kv-cache.ts) runs the same linear layers (adapters and weight storage included)
// on a step scratch the cache owns; the architecture supplies its step and head.

import type { KnownModelConfig } from "../io/hf-config.js";
import type { Kernels } from "../kernels/kernels.js";
import type { QuantizedWeight } from "../quant/quantized-linear.js";
import type { Heap } from "../tensor/heap.js";
import { sameShape, shapeString } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import type { AttentionImpl, AttentionTile } from "./attention.js";
import {
  type CheckpointSource,
  checkGradNames,
  findLinear,
  keyLengthsOf,
  LinearLayer,
  loadParams,
  type ParamSpec,
  shiftLabels,
  validateBatch,
} from "./common.js";
import { EmbeddingTable } from "./embedding-table.js";
import { type CacheDims, DecoderKvCache, type StepCapacity, type StepScratch } from "./kv-cache.js";
import type { LinearAdapter, LinearInfo } from "./linear.js";
import {
  type CountedRows,
  chunkedHeadLoss,
  DEFAULT_LOGITS_CHUNK_BYTES,
  type HeadBuffers,
  type HeadLosses,
  type HeadTraining,
  logitsChunkRows,
} from "./lm-head.js";
import { checkLossOut, meanHeadLoss, rowLosses } from "./loss-epilogue.js";
import type {
  Batch,
  CachedStep,
  CausalLM,
  KvCache,
  LossAndGradsOptions,
  MemoryOptions,
  OffHeapParam,
} from "./model.js";
import { DEFAULT_HEAD_SLICE_BYTES, sliceRows } from "./sliced-linear.js";
import {
  FrozenWeight,
  LinearWeights,
  storageAtLoad,
  type WeightLoadOptions,
  WeightScratch,
  type WeightStorageKind,
} from "./weights.js";

/** How a plan is laid out: the head's chunk of rows, and whether layers are checkpointed. */
export interface PlanLayout {
  /** Rows of logits per lm_head chunk (lm-head.ts), in [1, B*T]. */
  chunkRows: number;
  /**
   * Gradient checkpointing: the plan keeps only each layer's input, and one set of layer
   * activations shared by all layers that backwardPass refills by recomputing the layer's forward.
   */
  checkpointing: boolean;
  /** How attention is computed, and the tiled implementation's query rows per tile. */
  attention: AttentionImpl;
  attentionTile: AttentionTile;
}

/** Every buffer of one (B, T), allocated once; subclasses add their activations with tensor(). */
export class DecoderPlan implements HeadBuffers {
  readonly B: number;
  readonly T: number;
  readonly layout: PlanLayout;
  private readonly heap: Heap;
  private readonly owned: Tensor[] = [];
  readonly ids: Tensor; // (R) i32
  readonly targets: Tensor; // (R) i32, shifted labels
  readonly keyLengths: Tensor; // (B) i32
  readonly nf: Tensor; // (R, C) the lm_head's input (forwardPass's last output)
  readonly dn: Tensor; // (R, C) its gradient (backwardPass's first input; then the architecture's scratch)
  readonly logits: Tensor; // (chunkRows, V) one head chunk; in lossAndGrads overwritten by its gradient
  readonly losses: Tensor; // (R)
  private readonly V: number;
  private readonly C: number;
  private compact: CountedRows | null = null;
  private all: Tensor | null = null;

  constructor(heap: Heap, B: number, T: number, V: number, C: number, layout: PlanLayout) {
    this.heap = heap;
    this.B = B;
    this.T = T;
    this.V = V;
    this.C = C;
    this.layout = layout;
    const R = B * T;
    try {
      this.ids = this.tensor([R], "i32");
      this.targets = this.tensor([R], "i32");
      this.keyLengths = this.tensor([B], "i32");
      this.nf = this.tensor([R, C]);
      this.dn = this.tensor([R, C]);
      this.logits = this.tensor([layout.chunkRows, V]);
      this.losses = this.tensor([R]);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /**
   * forward()'s (B, T, V) logits: the head chunk when it holds every row, else a buffer of its
   * own allocated on first use and freed by releaseAllLogits (training and scoring never need it).
   */
  allLogits(): Tensor {
    const R = this.B * this.T;
    if (this.layout.chunkRows === R) return this.logits.view([this.B, this.T, this.V]);
    this.all ??= this.heap.tensor([this.B, this.T, this.V]);
    return this.all;
  }

  /** Frees forward()'s own logits buffer, if any (before a chunked head pass). */
  releaseAllLogits(): void {
    this.all?.dispose();
    this.all = null;
  }

  /** The buffers of a head over the counted rows only, allocated on first use (lm-head.ts). */
  headRows(): CountedRows {
    if (this.compact === null) {
      const R = this.B * this.T;
      const chunk = this.layout.chunkRows;
      this.compact = {
        rows: this.tensor([R], "i32"),
        targets: this.tensor([R], "i32"),
        x: this.tensor([chunk, this.C]),
        dx: this.tensor([chunk, this.C]),
      };
    }
    return this.compact;
  }

  /** A new heap tensor the plan owns (freed by dispose). A subclass constructor that allocates
   * must dispose the plan when an allocation throws. */
  protected tensor(shape: number[], dtype: "f32" | "i32" = "f32"): Tensor {
    const tensor = this.heap.tensor(shape, dtype);
    this.owned.push(tensor);
    return tensor;
  }

  dispose(): void {
    for (const tensor of this.owned) tensor.dispose();
    this.owned.length = 0;
    this.compact = null;
    this.releaseAllLogits();
  }
}

/** What the base needs to know of an architecture's sizes. */
export interface DecoderLimits {
  vocabSize: number;
  /** Width of the residual stream (hidden_size / n_embd): inputsEmbedsGrad is (B, T, hiddenSize). */
  hiddenSize: number;
  /** Longest sequence the position scheme allows, or null when unbounded. */
  maxPositions: number | null;
}

/** Builds a registered LinearLayer; shared = the weight is another parameter (a tied lm_head). */
export type LinearFactory = (info: LinearInfo, shared?: boolean) => LinearLayer;

export abstract class DecoderModel<
  Config extends KnownModelConfig,
  P extends DecoderPlan,
  S extends StepScratch,
> implements CausalLM
{
  readonly modelType: string;
  readonly config: Config;
  readonly kernels: Kernels;
  readonly params: ReadonlyMap<string, Tensor>;
  private readonly limits: DecoderLimits;
  private readonly linearsByPath = new Map<string, LinearLayer>();
  private readonly weights: LinearWeights;
  /** The token embedding, once embeddingTable built it. */
  private tokenTable: EmbeddingTable | null = null;
  private plan: P | null = null;
  private memory: Required<MemoryOptions> = {
    gradient_checkpointing: false,
    logitsChunkBytes: DEFAULT_LOGITS_CHUNK_BYTES,
    headSliceBytes: DEFAULT_HEAD_SLICE_BYTES,
    attention: "tiled",
    attentionTile: "auto",
  };

  constructor(
    config: Config,
    params: ReadonlyMap<string, Tensor>,
    kernels: Kernels,
    limits: DecoderLimits,
  ) {
    this.modelType = config.model_type;
    this.config = config;
    this.kernels = kernels;
    this.params = params;
    this.limits = limits;
    this.weights = new LinearWeights(this.linearsByPath, new WeightScratch(kernels.heap));
  }

  get vocabSize(): number {
    return this.limits.vocabSize;
  }

  /** A loaded parameter by HF name (the spec guarantees it; a miss is a bug). */
  protected param(name: string): Tensor {
    const p = this.params.get(name);
    if (p === undefined) throw new Error(`internal: parameter ${name} not loaded`);
    return p;
  }

  /** For the subclass constructor: the token embedding, on the heap or off it (offloaded). */
  protected embeddingTable(
    name: string,
    quantized: ReadonlyMap<string, QuantizedWeight>,
  ): EmbeddingTable {
    this.tokenTable = new EmbeddingTable(
      name,
      this.params.get(name) ?? null,
      quantized.get(name) ?? null,
    );
    return this.tokenTable;
  }

  /**
   * For the subclass constructor: builds linear layers over the loaded weights (f32 / 16-bit in
   * `params`, int8 / nf4 in `quantized`) and registers each by path for linears() and setAdapter.
   * The weight's stored shape is (out, in), or (in, out) when info.fanInFanOut (Conv1D).
   */
  protected linearFactory(
    params: Map<string, Tensor>,
    quantized: ReadonlyMap<string, QuantizedWeight>,
  ): LinearFactory {
    return (info, shared = false) => {
      const { inFeatures: inF, outFeatures: outF, weightName } = info;
      const shape: [number, number] = info.fanInFanOut ? [inF, outF] : [outF, inF];
      const stored = quantized.get(weightName) ?? null;
      // the lm_head is expanded a vocabulary slice at a time while off the heap (sliced-linear.ts)
      const rowBlock = info.path === "lm_head" ? sliceRows(this.memory.headSliceBytes, inF) : null;
      const weight = new FrozenWeight(
        weightName,
        shape,
        info.fanInFanOut,
        shared,
        params,
        stored,
        this.weights.scratch,
        rowBlock,
      );
      const layer = new LinearLayer(
        info,
        weight,
        info.biasName === null ? null : this.param(info.biasName),
      );
      this.linearsByPath.set(info.path, layer);
      return layer;
    };
  }

  /** Allocates the activation plan of one (B, T) in a layout (checkpointed layers or not). */
  protected abstract createPlan(B: number, T: number, layout: PlanLayout): P;
  /** ids, keyLengths -> plan.nf, the lm_head's input (and every activation backward reads). */
  protected abstract forwardPass(plan: P): void;
  /** The lm_head (the base runs it: on every row in forward, on the counted rows in lossAndGrads). */
  protected abstract headLayer(): LinearLayer;
  /**
   * Reads plan.dn (d loss / d nf); under plan.layout.checkpointing first recomputes each layer's
   * forward from its saved input (LinearLayer.forward's recompute); accumulates into paramGrads and adapters; overwrites inputsEmbedsGrad
   * (validated (R, C) view, or null) with d loss / d inputs_embeds. Skips the first layer's input
   * gradient when neither an embedding gradient, its input-norm gradient nor inputsEmbedsGrad
   * needs it (PyTorch autograd semantics).
   */
  protected abstract backwardPass(
    plan: P,
    paramGrads: ReadonlyMap<string, Tensor> | undefined,
    inputsEmbedsGrad: Tensor | null,
  ): void;
  /** Architecture-specific limits on the sequence length (after the generic batch checks). */
  protected checkSeqLen(_T: number): void {}
  /** Sizes of the key/value cache and the step scratch. */
  protected abstract cacheDims(): CacheDims;
  /** Allocates the architecture's step scratch of a capacity (for a cache of maxLength). */
  protected abstract createStepScratch(capacity: StepCapacity, maxLength: number): S;
  /**
   * One cached step over s.ids / s.positions (N * Tn tokens, rows' new tokens row-major): every
   * layer, appending keys and values to `cache` (kv-cache.ts cachedAttention). Returns the final
   * hidden states (N * Tn, C), before the final norm.
   */
  protected abstract forwardStep(
    cache: DecoderKvCache<S>,
    s: S,
    rows: readonly number[],
    Tn: number,
  ): Tensor;
  /** logits (n, V) = lm_head(final_norm(hidden (n, C))), with s's scratch. */
  protected abstract headStep(s: S, logits: Tensor, hidden: Tensor): void;

  linears(): LinearInfo[] {
    return [...this.linearsByPath.values()].map((l) => l.info);
  }

  setAdapter(path: string, adapter: LinearAdapter | null): void {
    findLinear(this.linearsByPath, path).adapter = adapter;
  }

  get memoryOptions(): Readonly<Required<MemoryOptions>> {
    return { ...this.memory };
  }

  setMemoryOptions(options: MemoryOptions): void {
    const bytes = options.logitsChunkBytes;
    if (bytes !== undefined && !(Number.isFinite(bytes) && bytes > 0))
      throw new Error(`setMemoryOptions: logitsChunkBytes must be a positive number, got ${bytes}`);
    const checkpointing = options.gradient_checkpointing;
    if (checkpointing !== undefined && typeof checkpointing !== "boolean") {
      throw new Error(
        `setMemoryOptions: gradient_checkpointing must be true or false, got ${String(checkpointing)}`,
      );
    }
    const attention = options.attention;
    if (attention !== undefined && attention !== "tiled" && attention !== "full") {
      throw new Error(
        `setMemoryOptions: attention must be "tiled" or "full", got ${String(attention)}`,
      );
    }
    const slice = options.headSliceBytes;
    if (slice !== undefined && !(slice > 0 && (Number.isFinite(slice) || slice === Infinity)))
      throw new Error(`setMemoryOptions: headSliceBytes must be a positive number, got ${slice}`);
    const tile = options.attentionTile;
    if (tile !== undefined && tile !== "auto" && !(Number.isSafeInteger(tile) && tile > 0)) {
      throw new Error(
        `setMemoryOptions: attentionTile must be "auto" or a positive integer, got ${tile}`,
      );
    }
    this.memory = {
      gradient_checkpointing: checkpointing ?? this.memory.gradient_checkpointing,
      logitsChunkBytes: bytes ?? this.memory.logitsChunkBytes,
      headSliceBytes: slice ?? this.memory.headSliceBytes,
      attention: attention ?? this.memory.attention,
      attentionTile: tile ?? this.memory.attentionTile,
    };
    const head = this.headLayer();
    head.weight.setRowBlock(sliceRows(this.memory.headSliceBytes, head.info.inFeatures));
    this.weights.fitScratch();
    this.plan?.dispose(); // the next call plans in the new layout
    this.plan = null;
  }

  forward(batch: Batch): Tensor {
    const plan = this.prepare(batch);
    this.forwardPass(plan);
    const logits = plan.allLogits(); // (B, T, V)
    const R = plan.B * plan.T;
    this.headLayer().forward(this.kernels, logits.view([R, this.limits.vocabSize]), plan.nf);
    return logits;
  }

  lossAndGrads(
    batch: Batch,
    options: LossAndGradsOptions & { lossOut: Tensor },
  ): { tokens: number };
  lossAndGrads(batch: Batch, options?: LossAndGradsOptions): { loss: number; tokens: number };
  lossAndGrads(batch: Batch, options: LossAndGradsOptions = {}): { loss: number; tokens: number } {
    checkGradNames(options.paramGrads, this.gradNames());
    checkLossOut(options.lossOut);
    const plan = this.prepare(batch);
    const inputsEmbedsGrad = this.inputsEmbedsGradOf(options.inputsEmbedsGrad, plan.B, plan.T);
    const tokens = this.prepareTargets(batch, plan);
    this.forwardPass(plan);
    // the head's forward, loss and backward, chunk by chunk: d loss / d nf into plan.dn
    const loss = meanHeadLoss(this.kernels, options, tokens, plan.dn, (training) =>
      this.headLoss(plan, tokens, training),
    );
    this.backwardPass(plan, options.paramGrads, inputsEmbedsGrad);
    return { loss, tokens };
  }

  async tokenLosses(batch: Batch): Promise<Float32Array> {
    const plan = this.prepare(batch);
    const R = plan.B * plan.T;
    const tokens = this.prepareTargets(batch, plan);
    if (tokens === 0) return new Float32Array(R); // (B*T), every target ignored
    this.forwardPass(plan);
    return rowLosses(this.kernels, this.headLoss(plan, tokens, null), R);
  }

  /**
   * The lm_head and the cross-entropy over plan.nf against plan.targets, in row chunks and on the
   * counted rows only when many targets are ignored (lm-head.ts); with `training`, also the head's
   * backward (d nf into training.dx, the head's weight and adapter gradients).
   */
  private headLoss(plan: P, tokens: number, training: HeadTraining | null): HeadLosses {
    plan.releaseAllLogits(); // a forward() before this call must not keep (B, T, V) alive
    const head = this.headLayer();
    return chunkedHeadLoss(this.kernels, head, plan, plan.nf, plan.targets, tokens, training);
  }

  /** options.inputsEmbedsGrad checked to be f32 (B, T, C), as an (R, C) view; null when absent. */
  private inputsEmbedsGradOf(grad: Tensor | undefined, B: number, T: number): Tensor | null {
    if (grad === undefined) return null;
    const C = this.limits.hiddenSize;
    const want = [B, T, C];
    if (grad.dtype !== "f32" || !sameShape(grad.shape, want)) {
      throw new Error(
        `lossAndGrads: options.inputsEmbedsGrad must be f32 ${shapeString(want)} (batch, seqLen, hidden), ` +
          `got ${grad.dtype} ${shapeString(grad.shape)}`,
      );
    }
    return grad.view([B * T, C]);
  }

  createCache(batchSize: number, maxLength: number): KvCache {
    for (const [name, value] of [
      ["batchSize", batchSize],
      ["maxLength", maxLength],
    ] as const) {
      if (!Number.isSafeInteger(value) || value <= 0)
        throw new Error(`createCache: ${name} must be a positive integer, got ${value}`);
    }
    const max = this.limits.maxPositions;
    if (max !== null && maxLength > max) {
      throw new Error(
        `createCache: maxLength ${maxLength} exceeds the model's ${max} positions (${this.modelType})`,
      );
    }
    this.checkSeqLen(maxLength);
    return new DecoderKvCache<S>(this.kernels.heap, this, this.cacheDims(), batchSize, maxLength);
  }

  forwardCached(kvCache: KvCache, step: CachedStep): Tensor {
    const cache = this.ownCache(kvCache);
    const { rows, inputIds, seqLen: Tn } = step;
    const last = (step.logits ?? "all") === "last";
    const N = rows.length;
    if (!Number.isSafeInteger(Tn) || Tn <= 0)
      throw new Error(`forwardCached: seqLen must be a positive integer, got ${Tn}`);
    if (N === 0) throw new Error("forwardCached: step.rows is empty");
    if (inputIds.length !== N * Tn) {
      throw new Error(
        `forwardCached: expected ${N * Tn} ids (${N} rows x seqLen ${Tn}), got ${inputIds.length}`,
      );
    }
    const seen = new Set<number>();
    for (const b of rows) {
      if (!Number.isInteger(b) || b < 0 || b >= cache.batchSize)
        throw new Error(`forwardCached: row ${b} is outside the cache's [0, ${cache.batchSize})`);
      if (seen.has(b)) throw new Error(`forwardCached: row ${b} is listed twice`);
      seen.add(b);
      const have = cache.lengths[b];
      if (have + Tn > cache.maxLength) {
        throw new Error(
          `forwardCached: row ${b} holds ${have} tokens; ${Tn} more exceed the cache's maxLength ${cache.maxLength}`,
        );
      }
    }
    const V = this.limits.vocabSize;
    for (let i = 0; i < inputIds.length; i++) {
      const id = inputIds[i];
      if (!(id >= 0 && id < V))
        throw new Error(
          `forwardCached: inputIds[${i}] = ${id} is outside the vocabulary [0, ${V})`,
        );
    }
    const R = N * Tn;
    const need = { tokens: R, seqLen: Tn, logitRows: last ? N : R };
    const s = cache.stepScratch(need, (capacity) =>
      this.createStepScratch(capacity, cache.maxLength),
    );
    s.ids.i32().set(inputIds);
    const positions = s.positions.i32();
    for (let n = 0; n < N; n++)
      for (let t = 0; t < Tn; t++) positions[n * Tn + t] = cache.lengths[rows[n]] + t;
    this.kernels.upload(s.ids, s.positions);
    const hidden = this.forwardStep(cache, s, rows, Tn); // (R, C)
    for (const b of rows) cache.lengths[b] += Tn;
    const C = hidden.size / R;
    if (!last || Tn === 1) {
      const logits = s.logits.view([R, V]);
      this.headStep(s, logits, hidden);
      return logits.view([N, Tn, V]);
    }
    const picked = s.lastHidden.view([N, C]); // each row's last new hidden state
    for (let n = 0; n < N; n++)
      this.kernels.copy(picked.view([1, C], n * C), hidden.view([1, C], (n * Tn + Tn - 1) * C));
    const logits = s.logits.view([N, V]);
    this.headStep(s, logits, picked);
    return logits.view([N, 1, V]);
  }

  dispose(): void {
    this.plan?.dispose();
    this.plan = null;
    for (const p of this.params.values()) p.dispose();
    this.weights.dispose();
  }

  weightStorage(path: string): WeightStorageKind {
    return this.weights.storage(path);
  }

  readLinearWeight(path: string): Float32Array {
    return this.weights.read(path);
  }

  writeLinearWeight(path: string, data: Float32Array): void {
    this.weights.write(path, data);
  }

  quantizeLinears(kind: WeightStorageKind, paths?: readonly string[]): void {
    this.weights.restore(kind, paths);
  }

  linearWeightBytes(): { heap: number; offHeap: number; scratch: number } {
    return this.weights.bytes();
  }

  offHeapParams(): OffHeapParam[] {
    const out: OffHeapParam[] = [];
    const table = this.tokenTable;
    if (table !== null && table.tensor === null) {
      const heap = this.kernels.heap;
      out.push({ name: table.name, shape: table.shape, read: () => table.readF32(heap) });
    }
    for (const { info, weight } of this.linearsByPath.values()) {
      if (!weight.offHeap || weight.shared || weight.kind === "int8" || weight.kind === "nf4")
        continue;
      out.push({ name: info.weightName, shape: weight.shape, read: () => weight.readF32() });
    }
    return out;
  }

  /**
   * Names a gradient may be asked for: the heap parameters, and the offloaded float linear
   * weights (dW needs no weight values; weights.ts' contract) not shared with the embedding (the
   * head's share alone would not be the gradient of the tied parameter).
   */
  private gradNames(): { has(name: string): boolean } {
    const offloaded = [...this.linearsByPath.values()].filter(
      (l) =>
        l.weight.offHeap && !l.weight.shared && l.weight.kind !== "int8" && l.weight.kind !== "nf4",
    );
    if (offloaded.length === 0) return this.params;
    return new Set([...this.params.keys(), ...offloaded.map((l) => l.info.weightName)]);
  }

  private ownCache(kvCache: KvCache): DecoderKvCache<S> {
    if (!(kvCache instanceof DecoderKvCache) || kvCache.owner !== this) {
      throw new Error("forwardCached: the cache was not created by this model's createCache");
    }
    if (kvCache.disposed) throw new Error("forwardCached: the cache has been disposed");
    return kvCache as DecoderKvCache<S>;
  }

  /** Validates the batch, (re)plans for its shape, and copies ids and key lengths in. */
  private prepare(batch: Batch): P {
    validateBatch(batch, this.limits.vocabSize, this.limits.maxPositions);
    const { batchSize: B, seqLen: T } = batch;
    this.checkSeqLen(T);
    if (this.plan === null || this.plan.B !== B || this.plan.T !== T) {
      this.plan?.dispose();
      this.plan = null;
      this.plan = this.createPlan(B, T, {
        chunkRows: logitsChunkRows(this.memory.logitsChunkBytes, this.limits.vocabSize, B * T),
        checkpointing: this.memory.gradient_checkpointing,
        attention: this.memory.attention,
        attentionTile: this.memory.attentionTile,
      });
    }
    this.plan.ids.i32().set(batch.inputIds);
    keyLengthsOf(batch, this.plan.keyLengths.i32());
    this.kernels.upload(this.plan.ids, this.plan.keyLengths);
    return this.plan;
  }

  /** The batch's shifted labels into plan.targets; returns the number of counted ones. */
  private prepareTargets(batch: Batch, plan: P): number {
    const tokens = shiftLabels(batch, plan.targets.i32(), this.limits.vocabSize);
    this.kernels.upload(plan.targets);
    return tokens;
  }
}

/**
 * loadParams with each parameter stored at load as `storage` asks (weights.ts storageAtLoad): the
 * linear weights are the 2-D specs other than the embeddings; lm_head is never quantized;
 * tokenEmbedding is the table an offloaded model keeps off the heap. fanInFanOut names the weights
 * stored (in, out). Returns the heap params and the off-heap weights (quantized or offloaded).
 */
export async function loadDecoderParams(
  kernels: Kernels,
  checkpoint: CheckpointSource,
  specs: readonly ParamSpec[],
  source: string,
  storage: WeightLoadOptions,
  layout: {
    embeddings: readonly string[];
    tokenEmbedding: string;
    fanInFanOut: (name: string) => boolean;
  },
): Promise<{ params: Map<string, Tensor>; quantized: Map<string, QuantizedWeight> }> {
  const isLinear = (name: string) =>
    !layout.embeddings.includes(name) && specs.some((s) => s.name === name && s.shape.length === 2);
  const plan = storageAtLoad(storage, {
    specs,
    isLinear,
    isHead: (name) => name === "lm_head.weight",
    tokenEmbedding: layout.tokenEmbedding,
    storedDtype: (name) => checkpoint.entries.get(name)?.dtype,
    heapLimit: kernels.heap.maxBytes,
  });
  const quantized = new Map<string, QuantizedWeight>();
  const params = await loadParams(kernels, checkpoint, specs, source, {
    kindOf: plan.kindOf,
    offHeap: plan.offHeap,
    fanInFanOut: layout.fanInFanOut,
    quantized,
  });
  return { params, quantized };
}
