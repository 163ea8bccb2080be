// The CausalLM plumbing every decoder-only architecture shares, so that an architecture file holds
// only what is its own: config -> dims, parameter spec, activation plan, forward and backward.
//
//   DecoderPlan   the buffers at the model's boundary (token ids, key lengths, shifted targets,
//                 logits, per-row losses) and ownership of every tensor a plan allocates; an
//                 architecture's plan extends it with its saved activations and scratch.
//   DecoderModel  the CausalLM methods: linear-layer registry (linears, setAdapter, the weight
//                 storage methods), re-planning per (B, T), forward = forwardPass -> lm_head,
//                 lossAndGrads = forwardPass -> lm_head + mean cross-entropy (headLoss: on the
//                 counted rows only when many labels are ignored) -> head backward -> backwardPass,
//                 tokenLosses = forwardPass -> headLoss, dispose; createCache / forwardCached =
//                 checks, per-row positions -> forwardStep -> (last rows) -> headStep.
//   loadDecoderParams  loadParams with the load-time storage of linear weights (weights.ts).
//
// Contract: activations are planned once per (B, T) and reused; a batch of another shape frees the
// plan and builds a new one (an explicit re-plan, never per step). Loss is transformers'
// ForCausalLMLoss: labels shifted by one, IGNORE_INDEX skipped, mean over the counted tokens.
// Cached decoding (kv-cache.ts) runs the same linear layers (adapters and weight storage included)
// on a step scratch the cache owns; the architecture supplies its step and head.

import type { KnownModelConfig } from "../io/hf-config.js";
import type { Kernels } from "../kernels/kernels.js";
import type { QuantizedWeight } from "../quant/quantized-linear.js";
import type { Heap } from "../tensor/heap.js";
import { sameShape, shapeString } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import {
  type CheckpointSource,
  checkGradNames,
  findLinear,
  IGNORE_INDEX,
  keyLengthsOf,
  LinearLayer,
  loadParams,
  type ParamSpec,
  shiftLabels,
  validateBatch,
} from "./common.js";
import { type CacheDims, DecoderKvCache, type StepCapacity, type StepScratch } from "./kv-cache.js";
import type { LinearAdapter, LinearInfo } from "./linear.js";
import type { Batch, CachedStep, CausalLM, KvCache, LossAndGradsOptions } from "./model.js";
import {
  FrozenWeight,
  LinearWeights,
  linearStorageAtLoad,
  type WeightLoadOptions,
  WeightScratch,
  type WeightStorageKind,
} from "./weights.js";

/** Every buffer of one (B, T), allocated once; subclasses add their activations with tensor(). */
export class DecoderPlan {
  readonly B: number;
  readonly T: number;
  private readonly heap: Heap;
  private readonly owned: Tensor[] = [];
  readonly ids: Tensor; // (R) i32
  readonly targets: Tensor; // (R) i32, shifted labels
  readonly keyLengths: Tensor; // (B) i32
  readonly nf: Tensor; // (R, C) the lm_head's input (forwardPass's last output)
  readonly dn: Tensor; // (R, C) its gradient (backwardPass's first input; then the architecture's scratch)
  readonly logits: Tensor; // (R, V); in lossAndGrads overwritten by their gradient (in-place cross-entropy)
  readonly logits3: Tensor; // (B, T, V) view
  readonly losses: Tensor; // (R)
  private readonly C: number;
  private compact: HeadRows | null = null;

  constructor(heap: Heap, B: number, T: number, V: number, C: number) {
    this.heap = heap;
    this.B = B;
    this.T = T;
    this.C = C;
    const R = B * T;
    try {
      this.ids = this.tensor([R], "i32");
      this.targets = this.tensor([R], "i32");
      this.keyLengths = this.tensor([B], "i32");
      this.nf = this.tensor([R, C]);
      this.dn = this.tensor([R, C]);
      this.logits = this.tensor([R, V]);
      this.logits3 = this.logits.view([B, T, V]);
      this.losses = this.tensor([R]);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** The buffers of a head over the counted rows only, allocated on first use (see headLoss). */
  headRows(): HeadRows {
    if (this.compact === null) {
      const R = this.B * this.T;
      this.compact = {
        rows: this.tensor([R], "i32"),
        targets: this.tensor([R], "i32"),
        x: this.tensor([R, this.C]),
        dx: this.tensor([R, this.C]),
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
  }
}

/** What headLoss ran: over all rows (rows null) or the counted ones (rows: their indices). */
interface HeadPass {
  rows: Tensor | null; // (n) i32
  x: Tensor; // (n, C) the head's input
  logits: Tensor; // (n, V), dLogits after a training pass
  losses: Tensor; // (n)
}

/** Scratch of a head over the counted rows: their indices, targets, inputs and input gradients. */
interface HeadRows {
  rows: Tensor; // (R) i32, the first n used
  targets: Tensor; // (R) i32
  x: Tensor; // (R, C)
  dx: Tensor; // (R, C)
}

/**
 * Skipping the lm_head on rows whose label is ignored pays once they are at least this share of
 * the batch: it costs a gather of the counted rows' hidden states and a scatter of their
 * gradients; each skipped row saves 4 * hidden * vocab flops of the head's forward and backward.
 */
const HEAD_SKIP_MIN_SHARE = 1 / 16;

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
  private plan: P | null = null;

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
      const weight = new FrozenWeight(
        weightName,
        shape,
        info.fanInFanOut,
        shared,
        params,
        stored,
        this.weights.scratch,
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

  /** Allocates the activation plan of one (B, T). */
  protected abstract createPlan(B: number, T: number): P;
  /** ids, keyLengths -> plan.nf, the lm_head's input (and every activation backward reads). */
  protected abstract forwardPass(plan: P): void;
  /** The lm_head (the base runs it: on every row in forward, on the counted rows in lossAndGrads). */
  protected abstract headLayer(): LinearLayer;
  /**
   * Reads plan.dn (d loss / d nf); accumulates into paramGrads and adapters; overwrites inputsEmbedsGrad
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

  forward(batch: Batch): Tensor {
    const plan = this.prepare(batch);
    this.forwardPass(plan);
    this.headLayer().forward(this.kernels, plan.logits, plan.nf);
    return plan.logits3;
  }

  lossAndGrads(batch: Batch, options: LossAndGradsOptions = {}): { loss: number; tokens: number } {
    const { paramGrads } = options;
    checkGradNames(paramGrads, this.params);
    const plan = this.prepare(batch);
    const inputsEmbedsGrad = this.inputsEmbedsGradOf(options.inputsEmbedsGrad, plan.B, plan.T);
    const tokens = shiftLabels(batch, plan.targets.i32(), this.limits.vocabSize);
    this.forwardPass(plan);
    let loss = 0;
    if (tokens === 0) {
      plan.dn.fill(0); // nothing counted: no gradient flows from the loss
    } else {
      // the head's backward: d loss / d nf into plan.dn (scattered back from the counted rows)
      const k = this.kernels;
      const head = this.headLayer();
      const pass = this.headLoss(plan, tokens, (options.lossScale ?? 1) / tokens);
      if (pass.rows === null) {
        head.backward(k, plan.dn, pass.logits, pass.x, paramGrads, true);
      } else {
        const dx = plan.headRows().dx.view(pass.x.shape); // (n, C)
        head.backward(k, dx, pass.logits, pass.x, paramGrads, true);
        plan.dn.fill(0);
        k.embeddingBackward(plan.dn, dx, pass.rows); // scatter-add into the zeroed dn
      }
      loss = k.sum(pass.losses) / tokens;
    }
    this.backwardPass(plan, paramGrads, inputsEmbedsGrad);
    return { loss, tokens };
  }

  tokenLosses(batch: Batch): Float32Array {
    const plan = this.prepare(batch);
    const R = plan.B * plan.T;
    const tokens = shiftLabels(batch, plan.targets.i32(), this.limits.vocabSize);
    const nll = new Float32Array(R); // (B*T), 0 where ignored
    if (tokens === 0) return nll;
    this.forwardPass(plan);
    const pass = this.headLoss(plan, tokens, null);
    const losses = pass.losses.toArray();
    if (pass.rows === null) return losses; // cross-entropy wrote 0 on the ignored rows
    const ids = pass.rows.i32();
    for (let i = 0; i < ids.length; i++) nll[ids[i]] = losses[i];
    return nll;
  }

  /**
   * The lm_head's forward and the cross-entropy against plan.targets, with dLogits written over
   * the logits when `gradScale` is given (training). Rows whose target is ignored contribute
   * nothing to the loss or any gradient, so when they are a large enough share
   * (HEAD_SKIP_MIN_SHARE: prompt tokens under completion-only loss, padding) the head runs on the
   * counted rows only, gathered into a compact (n, C) block: `rows` lists them (null: all rows ran,
   * and `x` is plan.nf).
   */
  private headLoss(plan: P, tokens: number, gradScale: number | null): HeadPass {
    const k = this.kernels;
    const head = this.headLayer();
    const R = plan.B * plan.T;
    const ce = (losses: Tensor, logits: Tensor, targets: Tensor): void => {
      if (gradScale === null) k.crossEntropy(losses, null, logits, targets);
      else k.crossEntropy(losses, logits, logits, targets, { gradScale }); // dLogits in place
    };
    if (R - tokens < R * HEAD_SKIP_MIN_SHARE) {
      head.forward(k, plan.logits, plan.nf);
      ce(plan.losses, plan.logits, plan.targets);
      return { rows: null, x: plan.nf, logits: plan.logits, losses: plan.losses };
    }
    const c = plan.headRows();
    const all = plan.targets.i32();
    const rowIds = c.rows.i32();
    const targets = c.targets.i32();
    let n = 0;
    for (let r = 0; r < R; r++) {
      if (all[r] === IGNORE_INDEX) continue;
      rowIds[n] = r;
      targets[n] = all[r];
      n++;
    }
    const rows = c.rows.view([n]);
    const x = c.x.view([n, this.limits.hiddenSize]); // (n, C)
    const logits = plan.logits.view([n, this.limits.vocabSize]); // (n, V)
    const losses = plan.losses.view([n]);
    k.embedding(x, plan.nf, rows); // gather the counted rows
    head.forward(k, logits, x);
    ce(losses, logits, c.targets.view([n]));
    return { rows, x, logits, losses };
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
    this.weights.scratch.dispose();
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
      this.plan = this.createPlan(B, T);
    }
    this.plan.ids.i32().set(batch.inputIds);
    keyLengthsOf(batch, this.plan.keyLengths.i32());
    return this.plan;
  }
}

/**
 * loadParams with each linear weight stored at load as `storage` asks (weights.ts): the linear
 * weights are the 2-D specs other than the embeddings; lm_head is never quantized. fanInFanOut
 * names the weights stored (in, out). Returns the heap params and the quantized weights.
 */
export async function loadDecoderParams(
  kernels: Kernels,
  checkpoint: CheckpointSource,
  specs: readonly ParamSpec[],
  source: string,
  storage: WeightLoadOptions,
  layout: { embeddings: readonly string[]; fanInFanOut: (name: string) => boolean },
): Promise<{ params: Map<string, Tensor>; quantized: Map<string, QuantizedWeight> }> {
  const isLinear = (name: string) =>
    !layout.embeddings.includes(name) && specs.some((s) => s.name === name && s.shape.length === 2);
  const kindOf = linearStorageAtLoad(storage, isLinear, (name) => name === "lm_head.weight");
  const quantized = new Map<string, QuantizedWeight>();
  const params = await loadParams(kernels, checkpoint, specs, source, {
    kindOf,
    fanInFanOut: layout.fanInFanOut,
    quantized,
  });
  return { params, quantized };
}
