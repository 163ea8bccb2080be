// T5 (model_type t5: T5 v1.0 and v1.1), the encoder-decoder T5ForConditionalGeneration: forward and
// backward written out explicitly (llm.c style, no autograd tape), backward the forward read in
// reverse with d-prefixed names. Mirrors transformers' modeling_t5.py:
//   encoder: x = shared(ids); per layer: x2 = x + SelfAttention(LN(x), bias_enc, padding mask)
//            x' = x2 + FF(LN(x2));  e = LN_final(x')
//   decoder: y = shared(shift_right(labels)); per layer: y2 = y + SelfAttention(LN(y), bias_dec,
//            causal); y3 = y2 + EncDecAttention(LN(y2), keys/values from e, padding mask);
//            y' = y3 + FF(LN(y3));  logits = lm_head(LN_final(y') * s)
// where LN is T5LayerNorm (RMSNorm without mean or bias: the rmsnorm kernel), attention has no
// 1/sqrt(d_kv) scale and adds the relative position bias that the first layer of each stack owns
// (relative_attention_bias, shared by the stack's other layers; none in cross-attention:
// biased-attention.ts), FF is wo(act(wi x)) (v1.0: ReLU) or wo(act(wi_0 x) * wi_1 x) (v1.1
// "gated-gelu": gelu_new), and s = d_model^-0.5 when config.scale_decoder_outputs (T5 v1.0's tied
// head). lm_head is shared.weight when the checkpoint has no lm_head.weight (transformers 5 ties it
// then), else its own weight. Loss: cross-entropy of position t against labels[t] (no shift),
// -100 ignored, mean over the counted targets. No biases anywhere, no dropout (eval semantics).
//
// Memory: parameters once; the activations of one (B, Te, Td) in t5-plan.ts, re-planned for another
// shape. Attention keeps each layer's (B, H, Tq, Tk) probabilities (quadratic in T);
// gradient_checkpointing and cached decoding are not implemented for t5 (errors say so).
// Legend: as t5-plan.ts.

import type { T5Config } from "../io/hf-config.js";
import type { Kernels } from "../kernels/kernels.js";
import type { QuantizedWeight } from "../quant/quantized-linear.js";
import type { Tensor } from "../tensor/tensor.js";
import {
  type BiasedAttentionOptions,
  biasedAttentionBackward,
  biasedAttentionForward,
  positionBiasBackward,
  positionBiasForward,
} from "./biased-attention.js";
import {
  type CheckpointSource,
  checkGradNames,
  findLinear,
  gradFor,
  IGNORE_INDEX,
  keyLengthsOf,
  LinearLayer,
  validateBatch,
} from "./common.js";
import { loadDecoderParams } from "./decoder-base.js";
import type { LinearAdapter, LinearInfo } from "./linear.js";
import {
  chunkedHeadLoss,
  DEFAULT_LOGITS_CHUNK_BYTES,
  type HeadLosses,
  type HeadTraining,
  logitsChunkRows,
} from "./lm-head.js";
import { checkLossOut, meanHeadLoss, rowLosses } from "./loss-epilogue.js";
import type {
  Batch,
  CausalLM,
  KvCache,
  LossAndGradsOptions,
  MemoryOptions,
  OffHeapParam,
} from "./model.js";
import { DEFAULT_HEAD_SLICE_BYTES } from "./sliced-linear.js";
import { activationBackward, activationForward } from "./t5-activation.js";
import {
  type AttnActs,
  type FfActs,
  type StackActs,
  type T5Dims,
  T5Plan,
  t5BlockPaths,
  t5DimsOf,
  t5FfInputs,
  t5ParamSpecs,
} from "./t5-plan.js";
import {
  FrozenWeight,
  LinearWeights,
  type WeightLoadOptions,
  WeightScratch,
  type WeightStorageKind,
} from "./weights.js";

interface AttnWeights {
  q: LinearLayer;
  k: LinearLayer;
  v: LinearLayer;
  o: LinearLayer;
  norm: Tensor; // (C)
  normName: string;
}

interface FfWeights {
  wi: LinearLayer[]; // [wi] or [wi_0, wi_1]
  wo: LinearLayer;
  norm: Tensor; // (C)
  normName: string;
}

interface LayerWeights {
  self: AttnWeights;
  cross: AttnWeights | null;
  ff: FfWeights;
}

/** A stack's relative_attention_bias (NB, H), owned by its first layer. */
interface BiasTable {
  name: string;
  table: Tensor;
}

type Grads = ReadonlyMap<string, Tensor> | undefined;

class T5Model implements CausalLM {
  readonly modelType = "t5";
  readonly config: T5Config;
  readonly kernels: Kernels;
  readonly params: ReadonlyMap<string, Tensor>;
  private readonly d: T5Dims;
  private readonly linearsByPath = new Map<string, LinearLayer>();
  private readonly weights: LinearWeights;
  private readonly shared: Tensor; // (V, C)
  private readonly encLayers: LayerWeights[] = [];
  private readonly decLayers: LayerWeights[] = [];
  private readonly encBias: BiasTable;
  private readonly decBias: BiasTable;
  private readonly encFinal: Tensor; // (C)
  private readonly decFinal: Tensor; // (C)
  private readonly lmHead: LinearLayer;
  private plan: T5Plan | null = null;
  private logitsChunkBytes = DEFAULT_LOGITS_CHUNK_BYTES;

  constructor(
    config: T5Config,
    d: T5Dims,
    params: Map<string, Tensor>,
    quantized: ReadonlyMap<string, QuantizedWeight>,
    kernels: Kernels,
  ) {
    this.config = config;
    this.d = d;
    this.params = params;
    this.kernels = kernels;
    this.weights = new LinearWeights(this.linearsByPath, new WeightScratch(kernels.heap));
    const param = (name: string): Tensor => {
      const p = params.get(name);
      if (p === undefined) throw new Error(`internal: parameter ${name} not loaded`);
      return p;
    };
    const linear = (path: string, inF: number, outF: number, weightName = `${path}.weight`) => {
      const info: LinearInfo = {
        path,
        inFeatures: inF,
        outFeatures: outF,
        weightName,
        biasName: null,
        fanInFanOut: false,
      };
      const shared = weightName !== `${path}.weight`;
      const stored = quantized.get(weightName) ?? null;
      const weight = new FrozenWeight(
        weightName,
        [outF, inF],
        false,
        shared,
        params,
        stored,
        this.weights.scratch,
      );
      const layer = new LinearLayer(info, weight, null);
      this.linearsByPath.set(path, layer);
      return layer;
    };
    const { C, H, D, F } = d;
    const I = H * D;
    const attention = (path: string, normName: string): AttnWeights => ({
      q: linear(`${path}.q`, C, I),
      k: linear(`${path}.k`, C, I),
      v: linear(`${path}.v`, C, I),
      o: linear(`${path}.o`, I, C),
      norm: param(normName),
      normName,
    });
    for (const [stack, L, layers] of [
      ["encoder", d.Le, this.encLayers],
      ["decoder", d.Ld, this.decLayers],
    ] as const) {
      for (let l = 0; l < L; l++) {
        const p = t5BlockPaths(stack, l);
        layers.push({
          self: attention(p.self, p.selfNorm),
          cross: stack === "decoder" ? attention(p.cross, p.crossNorm) : null,
          ff: {
            wi: t5FfInputs(d.gated).map((wi) => linear(`${p.ff}.${wi}`, C, F)),
            wo: linear(`${p.ff}.wo`, F, C),
            norm: param(p.ffNorm),
            normName: p.ffNorm,
          },
        });
      }
    }
    this.shared = param("shared.weight");
    const table = (stack: "encoder" | "decoder"): BiasTable => {
      const name = `${t5BlockPaths(stack, 0).self}.relative_attention_bias.weight`;
      return { name, table: param(name) };
    };
    this.encBias = table("encoder");
    this.decBias = table("decoder");
    this.encFinal = param("encoder.final_layer_norm.weight");
    this.decFinal = param("decoder.final_layer_norm.weight");
    this.lmHead = linear("lm_head", C, d.V, d.tied ? "shared.weight" : "lm_head.weight");
  }

  get vocabSize(): number {
    return this.d.V;
  }

  linears(): LinearInfo[] {
    return [...this.linearsByPath.values()].map((l) => l.info);
  }

  setAdapter(path: string, adapter: LinearAdapter | null): void {
    findLinear(this.linearsByPath, path).adapter = adapter;
  }

  get memoryOptions(): Readonly<Required<MemoryOptions>> {
    return {
      gradient_checkpointing: false,
      logitsChunkBytes: this.logitsChunkBytes,
      headSliceBytes: DEFAULT_HEAD_SLICE_BYTES, // no effect: t5 keeps its weights on the heap
      attention: "full",
      attentionTile: "auto",
    };
  }

  /**
   * Only logitsChunkBytes applies. t5 attention is always "full" (biased-attention.ts): the
   * attention options are accepted and have no effect; gradient_checkpointing is an error.
   */
  setMemoryOptions(options: MemoryOptions): void {
    if (options.gradient_checkpointing === true)
      throw new Error("t5: gradient_checkpointing is not supported for this architecture");
    const bytes = options.logitsChunkBytes;
    if (bytes !== undefined && !(Number.isFinite(bytes) && bytes > 0))
      throw new Error(`setMemoryOptions: logitsChunkBytes must be a positive number, got ${bytes}`);
    this.logitsChunkBytes = bytes ?? this.logitsChunkBytes;
    this.plan?.dispose();
    this.plan = null;
  }

  forward(batch: Batch): Tensor {
    const plan = this.prepare(batch);
    this.forwardPass(plan);
    const logits = plan.allLogits(); // (B, Td, V)
    this.lmHead.forward(this.kernels, logits.view([plan.B * plan.Td, this.d.V]), plan.dec.out);
    return logits;
  }

  lossAndGrads(
    batch: Batch,
    options: LossAndGradsOptions & { lossOut: Tensor },
  ): { tokens: number };
  lossAndGrads(batch: Batch, options?: LossAndGradsOptions): { loss: number; tokens: number };
  lossAndGrads(batch: Batch, options: LossAndGradsOptions = {}): { loss: number; tokens: number } {
    checkGradNames(options.paramGrads, this.params);
    if (options.inputsEmbedsGrad !== undefined)
      throw new Error("t5: lossAndGrads does not support options.inputsEmbedsGrad");
    checkLossOut(options.lossOut);
    const plan = this.prepare(batch);
    const tokens = this.countTargets(plan);
    this.forwardPass(plan);
    const dOut = plan.dn.view([plan.B * plan.Td, this.d.C]);
    const loss = meanHeadLoss(this.kernels, options, tokens, dOut, (training) =>
      this.headLoss(plan, tokens, training),
    );
    this.backwardPass(plan, options.paramGrads);
    return { loss, tokens };
  }

  async tokenLosses(batch: Batch): Promise<Float32Array> {
    const plan = this.prepare(batch);
    const tokens = this.countTargets(plan);
    const R = plan.B * plan.Td;
    if (tokens === 0) return new Float32Array(R); // (B*Td), every target ignored
    this.forwardPass(plan);
    return rowLosses(this.kernels, this.headLoss(plan, tokens, null), R);
  }

  /**
   * The lm_head and the cross-entropy over the decoder's output against plan.targets (lm-head.ts);
   * with `training`, also the head's backward (d out into training.dx, the head's gradients).
   */
  private headLoss(plan: T5Plan, tokens: number, training: HeadTraining | null): HeadLosses {
    plan.releaseAllLogits(); // a forward() before this call must not keep (B, Td, V) alive
    return chunkedHeadLoss(
      this.kernels,
      this.lmHead,
      plan,
      plan.dec.out,
      plan.targets,
      tokens,
      training,
    );
  }

  createCache(_batchSize: number, _maxLength: number): KvCache {
    throw new Error("t5: cached decoding (createCache / generation) is not supported yet");
  }

  forwardCached(): Tensor {
    throw new Error("t5: cached decoding (forwardCached / generation) is not supported yet");
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

  offHeapParams(): OffHeapParam[] {
    return []; // t5 never offloads (createT5)
  }

  linearWeightBytes(): { heap: number; offHeap: number; scratch: number } {
    return this.weights.bytes();
  }

  dispose(): void {
    this.plan?.dispose();
    this.plan = null;
    for (const p of this.params.values()) p.dispose();
    this.weights.dispose();
  }

  /**
   * Validates the batch, (re)plans for its shape, fills ids (the decoder's: labels shifted right
   * behind decoder_start_token_id, -100 -> pad, T5PreTrainedModel._shift_right), key lengths and
   * targets, and uploads what the host wrote (a new plan's position buckets too).
   */
  private prepare(batch: Batch): T5Plan {
    const { decoder, ...encoderSide } = batch;
    if (decoder === undefined)
      throw new Error("t5: batch.decoder (the target sequence) is required for an encoder-decoder");
    if (batch.labels !== undefined)
      throw new Error("t5: batch.labels must be absent (the targets are batch.decoder.labels)");
    validateBatch(encoderSide, this.d.V, null);
    const B = batch.batchSize;
    const Te = batch.seqLen;
    const Td = decoder.seqLen;
    if (!Number.isSafeInteger(Td) || Td <= 0)
      throw new Error(`batch.decoder.seqLen must be a positive integer, got ${Td}`);
    if (decoder.labels.length !== B * Td) {
      throw new Error(
        `batch.decoder.labels: expected ${B * Td} values (B*Td), got ${decoder.labels.length}`,
      );
    }
    if (this.plan === null || this.plan.B !== B || this.plan.Te !== Te || this.plan.Td !== Td) {
      this.plan?.dispose();
      this.plan = null;
      const chunk = logitsChunkRows(this.logitsChunkBytes, this.d.V, B * Td);
      this.plan = new T5Plan(this.kernels.heap, this.d, B, Te, Td, chunk);
      this.kernels.upload(this.plan.enc.biasBuf.buckets, this.plan.dec.biasBuf.buckets);
    }
    const plan = this.plan;
    plan.enc.ids.i32().set(batch.inputIds);
    keyLengthsOf(encoderSide, plan.enc.keyLengths.i32());
    plan.dec.keyLengths.i32().fill(Td);
    const labels = decoder.labels;
    const ids = plan.dec.ids.i32();
    const targets = plan.targets.i32();
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < Td; t++) {
        const label = labels[b * Td + t];
        if (label !== IGNORE_INDEX && !(label >= 0 && label < this.d.V)) {
          throw new Error(
            `batch.decoder.labels[${b * Td + t}] = ${label} is outside the vocabulary [0, ${this.d.V})`,
          );
        }
        targets[b * Td + t] = label;
        const prev = t === 0 ? this.d.startId : labels[b * Td + t - 1];
        ids[b * Td + t] = prev === IGNORE_INDEX ? this.d.padId : prev;
      }
    }
    const { enc, dec } = plan;
    this.kernels.upload(enc.ids, enc.keyLengths, dec.ids, dec.keyLengths, plan.targets);
    return plan;
  }

  private countTargets(plan: T5Plan): number {
    let n = 0;
    for (const t of plan.targets.i32()) if (t !== IGNORE_INDEX) n++;
    return n;
  }

  private forwardPass(plan: T5Plan): void {
    const k = this.kernels;
    const d = this.d;
    const { enc, dec } = plan;
    for (const [s, layers, table, decoder] of [
      [enc, this.encLayers, this.encBias.table, false],
      [dec, this.decLayers, this.decBias.table, true],
    ] as const) {
      k.embedding(layers.length > 0 ? s.layers[0].x : s.xFinal, this.shared, s.ids);
      positionBiasForward(k, s.bias, table, s.biasBuf);
      for (let l = 0; l < layers.length; l++) {
        const a = s.layers[l];
        const w = layers[l];
        const xOut = l + 1 < layers.length ? s.layers[l + 1].x : s.xFinal;
        const self = { bias: s.bias, keyLengths: s.keyLengths, causal: decoder };
        this.attnForward(plan, a.self, w.self, a.x, a.x2, null, self, s.T, s.T);
        let ffIn = a.x2;
        if (w.cross !== null && a.cross !== null && a.x3 !== null) {
          const cross = { bias: null, keyLengths: enc.keyLengths, causal: false };
          this.attnForward(plan, a.cross, w.cross, a.x2, a.x3, enc.out, cross, s.T, enc.T);
          ffIn = a.x3;
        }
        this.ffForward(a.ff, w.ff, ffIn, xOut);
      }
      k.rmsnorm(s.out, s.rstd, s.xFinal, decoder ? this.decFinal : this.encFinal, d.eps);
    }
    if (d.headScale !== 1) k.scale(dec.out, dec.out, d.headScale);
  }

  /**
   * out (B*Tq, C) = x + o(attention(q(LN(x)), k(src), v(src))), src = LN(x) (self-attention) or
   * kvSource (B*Tk, C) (cross-attention: the encoder output).
   */
  private attnForward(
    plan: T5Plan,
    a: AttnActs,
    w: AttnWeights,
    x: Tensor,
    out: Tensor,
    kvSource: Tensor | null,
    o: BiasedAttentionOptions,
    Tq: number,
    Tk: number,
  ): void {
    const k = this.kernels;
    const { B } = plan;
    const { H, D } = this.d;
    const I = H * D;
    k.rmsnorm(a.n, a.rstd, x, w.norm, this.d.eps);
    const src = kvSource ?? a.n;
    const qLin = plan.qLin.view([B, Tq, H, D]);
    const kLin = plan.kLin.view([B, Tk, H, D]);
    const vLin = plan.vLin.view([B, Tk, H, D]);
    w.q.forward(k, qLin.view([B * Tq, I]), a.n);
    w.k.forward(k, kLin.view([B * Tk, I]), src);
    w.v.forward(k, vLin.view([B * Tk, I]), src);
    k.permute0213(a.qh, qLin); // (B, Tq, H, D) -> (B, H, Tq, D)
    k.permute0213(a.kh, kLin);
    k.permute0213(a.vh, vLin);
    const attnOut = plan.attnOut.view([B, H, Tq, D]);
    biasedAttentionForward(k, attnOut, a.probs, a.qh, a.kh, a.vh, o);
    k.permute0213(a.atty.view([B, Tq, H, D]), attnOut);
    w.o.forward(k, out, a.atty);
    k.add(out, out, x);
  }

  /** out (R, C) = x + wo(act(wi LN(x))), or x + wo(act(wi_0 LN(x)) * wi_1 LN(x)) (gated). */
  private ffForward(f: FfActs, w: FfWeights, x: Tensor, out: Tensor): void {
    const k = this.kernels;
    k.rmsnorm(f.n, f.rstd, x, w.norm, this.d.eps);
    w.wi[0].forward(k, f.h0, f.n);
    if (f.h1 !== null && f.act !== null) {
      w.wi[1].forward(k, f.h1, f.n);
      activationForward(k, this.d.act, f.act, f.h0);
      k.mul(f.h, f.act, f.h1);
    } else activationForward(k, this.d.act, f.h, f.h0);
    w.wo.forward(k, out, f.h);
    k.add(out, out, x);
  }

  /** Reads plan.dn (d of the decoder's scaled final output); accumulates into paramGrads and adapters. */
  private backwardPass(plan: T5Plan, paramGrads: Grads): void {
    const k = this.kernels;
    const d = this.d;
    const { enc, dec } = plan;
    const overwrite = { accumulate: false };
    const dEmbed = gradFor(paramGrads, "shared.weight", this.shared);
    const dOut = plan.dn.view([plan.B * plan.Td, d.C]);
    if (d.headScale !== 1) k.scale(dOut, dOut, d.headScale);
    k.rmsnormBackward(
      dec.dx,
      gradFor(paramGrads, "decoder.final_layer_norm.weight", this.decFinal),
      dOut,
      dec.xFinal,
      this.decFinal,
      dec.rstd,
      overwrite,
    );
    k.fill(plan.dEncOut, 0); // the cross-attentions' k and v products add into it
    this.stackBackward(plan, dec, this.decLayers, this.decBias, dEmbed, paramGrads);
    k.rmsnormBackward(
      enc.dx,
      gradFor(paramGrads, "encoder.final_layer_norm.weight", this.encFinal),
      plan.dEncOut,
      enc.xFinal,
      this.encFinal,
      enc.rstd,
      overwrite,
    );
    this.stackBackward(plan, enc, this.encLayers, this.encBias, dEmbed, paramGrads);
  }

  /**
   * One stack's layers in reverse from s.dx (d of its last layer's output), then its position
   * bias table and its share of the embedding gradient. As in PyTorch autograd, the first
   * layer's input gradient is computed only when the embedding or that layer's norm weight
   * asks for it.
   */
  private stackBackward(
    plan: T5Plan,
    s: StackActs,
    layers: LayerWeights[],
    bias: BiasTable,
    dEmbed: Tensor | null,
    paramGrads: Grads,
  ): void {
    const k = this.kernels;
    const dTable = gradFor(paramGrads, bias.name, bias.table);
    const dBias = dTable === null ? null : s.dBias;
    if (dBias !== null) k.fill(dBias, 0);
    const needInputGrad =
      dEmbed !== null ||
      (layers.length > 0 &&
        gradFor(paramGrads, layers[0].self.normName, layers[0].self.norm) !== null);
    for (let l = layers.length - 1; l >= 0; l--) {
      const a = s.layers[l];
      const w = layers[l];
      let ffIn = a.x2;
      if (a.x3 !== null) ffIn = a.x3;
      this.ffBackward(plan, a.ff, w.ff, ffIn, s.dx, paramGrads);
      if (w.cross !== null && a.cross !== null) {
        const kv = { source: plan.enc, dSource: plan.dEncOut };
        this.attnBackward(
          plan,
          a.cross,
          w.cross,
          a.x2,
          s.dx,
          kv,
          null,
          true,
          s.T,
          plan.Te,
          paramGrads,
        );
      }
      const needInput = l > 0 || needInputGrad;
      this.attnBackward(
        plan,
        a.self,
        w.self,
        a.x,
        s.dx,
        null,
        dBias,
        needInput,
        s.T,
        s.T,
        paramGrads,
      );
    }
    if (dTable !== null) positionBiasBackward(k, dTable, s.dBias, s.biasBuf);
    if (dEmbed !== null) k.embeddingBackward(dEmbed, s.dx, s.ids);
  }

  /**
   * attnForward's backward. dRes (B*Tq, C) holds d out on entry and d x on return (the residual
   * plus the norm's input gradient, unless needInput is false: the stack's first layer).
   * Cross-attention (kv): the k and v input gradients add into kv.dSource (B*Tk, C).
   */
  private attnBackward(
    plan: T5Plan,
    a: AttnActs,
    w: AttnWeights,
    x: Tensor,
    dRes: Tensor,
    kv: { source: StackActs; dSource: Tensor } | null,
    dBias: Tensor | null,
    needInput: boolean,
    Tq: number,
    Tk: number,
    paramGrads: Grads,
  ): void {
    const k = this.kernels;
    const { B } = plan;
    const { C, H, D } = this.d;
    const I = H * D;
    const dAtty = plan.dAtty.view([B * Tq, I]);
    const dAttnOut = plan.dAttnOut.view([B, H, Tq, D]);
    const dQh = plan.dQh.view([B, H, Tq, D]);
    const dKh = plan.dKh.view([B, H, Tk, D]);
    const dVh = plan.dVh.view([B, H, Tk, D]);
    const dQLin = plan.dQLin.view([B, Tq, H, D]);
    const dKLin = plan.dKLin.view([B, Tk, H, D]);
    const dVLin = plan.dVLin.view([B, Tk, H, D]);
    w.o.backward(k, dAtty, dRes, a.atty, paramGrads, true);
    k.permute0213(dAttnOut, dAtty.view([B, Tq, H, D])); // -> (B, H, Tq, D)
    const scratch = { dProbs: plan.dProbs, dScores: plan.dScores };
    const dScratch = {
      dProbs: scratch.dProbs.view([B, H, Tq, Tk]),
      dScores: scratch.dScores.view([B, H, Tq, Tk]),
    };
    biasedAttentionBackward(k, dQh, dKh, dVh, dBias, dAttnOut, a.probs, a.qh, a.kh, a.vh, dScratch);
    k.permute0213(dQLin, dQh); // (B, H, T, D) -> (B, T, H, D)
    k.permute0213(dKLin, dKh);
    k.permute0213(dVLin, dVh);
    const dn = needInput ? plan.dn.view([B * Tq, C]) : null;
    w.q.backward(k, dn, dQLin.view([B * Tq, I]), a.n, paramGrads, true);
    if (kv !== null) {
      w.k.backward(k, kv.dSource, dKLin.view([B * Tk, I]), kv.source.out, paramGrads);
      w.v.backward(k, kv.dSource, dVLin.view([B * Tk, I]), kv.source.out, paramGrads);
    } else {
      w.k.backward(k, dn, dKLin.view([B * Tk, I]), a.n, paramGrads);
      w.v.backward(k, dn, dVLin.view([B * Tk, I]), a.n, paramGrads);
    }
    if (dn !== null)
      k.rmsnormBackward(dRes, gradFor(paramGrads, w.normName, w.norm), dn, x, w.norm, a.rstd);
  }

  /** ffForward's backward: dRes (R, C) holds d out on entry, d x on return. */
  private ffBackward(
    plan: T5Plan,
    f: FfActs,
    w: FfWeights,
    x: Tensor,
    dRes: Tensor,
    paramGrads: Grads,
  ): void {
    const k = this.kernels;
    const [R, C] = x.shape;
    const F = this.d.F;
    const dH = plan.dH.view([R, F]);
    const dH0 = plan.dH0.view([R, F]);
    const dn = plan.dn.view([R, C]);
    w.wo.backward(k, dH, dRes, f.h, paramGrads, true);
    if (f.h1 !== null && f.act !== null) {
      const dAct = plan.dAct.view([R, F]);
      const dH1 = plan.dH1.view([R, F]);
      k.mul(dAct, dH, f.h1); // h = act * h1
      k.mul(dH1, dH, f.act);
      activationBackward(k, this.d.act, dH0, f.h0, dAct);
      w.wi[0].backward(k, dn, dH0, f.n, paramGrads, true);
      w.wi[1].backward(k, dn, dH1, f.n, paramGrads);
    } else {
      activationBackward(k, this.d.act, dH0, f.h0, dH);
      w.wi[0].backward(k, dn, dH0, f.n, paramGrads, true);
    }
    k.rmsnormBackward(dRes, gradFor(paramGrads, w.normName, w.norm), dn, x, w.norm, f.rstd);
  }
}

/**
 * Registry entry: builds a T5 model from its config and checkpoint. The lm_head is tied to
 * shared.weight when the checkpoint has no lm_head.weight (what transformers 5 does), else its own.
 */
export async function createT5(
  config: T5Config,
  checkpoint: CheckpointSource,
  kernels: Kernels,
  source: string,
  storage: WeightLoadOptions = {},
): Promise<CausalLM> {
  if (storage.offloadFrozen === "on") {
    throw new Error(
      `${source}: t5 keeps its frozen weights on the engine heap (--offload-frozen on is not supported)`,
    );
  }
  const d = t5DimsOf(config, !checkpoint.entries.has("lm_head.weight"));
  const specs = t5ParamSpecs(d);
  const biasTables = specs
    .map((s) => s.name)
    .filter((n) => n.endsWith("relative_attention_bias.weight"));
  const { params, quantized } = await loadDecoderParams(
    kernels,
    checkpoint,
    specs,
    source,
    { ...storage, offloadFrozen: "off" },
    {
      embeddings: ["shared.weight", ...biasTables],
      tokenEmbedding: "shared.weight",
      fanInFanOut: () => false,
    },
  );
  try {
    return new T5Model(config, d, params, quantized, kernels);
  } catch (err) {
    for (const p of params.values()) p.dispose();
    throw err;
  }
}
