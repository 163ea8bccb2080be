// The Llama family (model_type llama, qwen2, mistral): forward and backward written out explicitly
// (llm.c style, no autograd tape), side by side; backward is the forward read in reverse with
// d-prefixed names. Mirrors transformers' modeling_llama.py / modeling_qwen2.py /
// modeling_mistral.py:
//   x = embed(ids)
//   per layer: n1 = RMSNorm(x); q,k,v = n1 Wq^T (+bq), ...; RoPE(q, k); GQA attention (head h uses
//              kv head h // g, g = H / Hkv, HF's repeat_kv); x2 = x + o_proj(attn);
//              n2 = RMSNorm(x2); x' = x2 + down(silu(gate(n2)) * up(n2))
//   logits = RMSNorm(x) W_lm^T   (W_lm = embedding when tie_word_embeddings)
// Biases: Qwen2 always has q/k/v biases; Llama has q/k/v/o biases when attention_bias and
// gate/up/down biases when mlp_bias. Positions are 0..T-1 for every row (HF's default position_ids);
// padding is right padding, masked on the key side (keyLengths), which is also what HF's eager
// mask does for pad queries, so logits agree at every position.
//
// Memory: parameters are loaded once; activations are planned for one (B, T) and reused; a batch
// of another shape frees the plan and builds a new one (decoder-base.ts, with the rest of the
// CausalLM plumbing). Gradient checkpointing (plan layout): layers keep only their input x and
// share one set of activations; backward calls layerForward again (recompute) before each layer.
// Cached decoding (forwardStep, after forwardPass): the same layer with RoPE at each new token's
// own position (HF's position_ids = cache_position per row) and attention against the row's
// cached keys (kv-cache.ts).
// Legend: B batch, T time, C hidden, H heads, Hkv kv heads, D head dim, I intermediate, V vocab,
// R = B*T rows, L layers.

import type { LlamaFamilyConfig } from "../io/hf-config.js";
import type { Kernels } from "../kernels/kernels.js";
import { type RopeScaling, ropeTables } from "../kernels/ref/rope.js";
import type { QuantizedWeight } from "../quant/quantized-linear.js";
import type { Tensor } from "../tensor/tensor.js";
import {
  type CheckpointSource,
  causalProducts,
  gradFor,
  type LinearLayer,
  type ParamSpec,
} from "./common.js";
import { DecoderModel, DecoderPlan, loadDecoderParams, type PlanLayout } from "./decoder-base.js";
import {
  type CacheDims,
  cachedAttention,
  type DecoderKvCache,
  type StepCapacity,
  StepScratch,
} from "./kv-cache.js";
import type { CausalLM } from "./model.js";
import { ropeScalingOf } from "./rope-scaling.js";
import type { WeightLoadOptions } from "./weights.js";

/** Architecture numbers derived from the config once. */
interface Dims {
  L: number;
  C: number;
  H: number;
  Hkv: number;
  D: number;
  I: number;
  V: number;
  eps: number;
  tied: boolean;
  qkvBias: boolean;
  oBias: boolean;
  mlpBias: boolean;
  ropeTheta: number;
  ropeScaling: RopeScaling | undefined;
  maxPositions: number | null;
  slidingWindow: number | null;
}

function dimsOf(config: LlamaFamilyConfig): Dims {
  const H = config.num_attention_heads;
  const Hkv = config.num_key_value_heads;
  const D = config.head_dim;
  if (D % 2 !== 0) throw new Error(`${config.model_type}: head_dim ${D} must be even for RoPE`);
  if (H % Hkv !== 0) {
    throw new Error(
      `${config.model_type}: num_attention_heads ${H} is not a multiple of num_key_value_heads ${Hkv}`,
    );
  }
  if (config.hidden_act !== "silu") {
    throw new Error(
      `${config.model_type}: hidden_act "${config.hidden_act}" is not supported (only "silu")`,
    );
  }
  return {
    L: config.num_hidden_layers,
    C: config.hidden_size,
    H,
    Hkv,
    D,
    I: config.intermediate_size,
    V: config.vocab_size,
    eps: config.rms_norm_eps,
    tied: config.tie_word_embeddings,
    qkvBias: config.attention_bias,
    oBias: config.o_proj_bias,
    mlpBias: config.mlp_bias,
    ropeTheta: config.rope_theta,
    ropeScaling: ropeScalingOf(config.rope_scaling, config.model_type),
    maxPositions: config.max_position_embeddings,
    slidingWindow: config.sliding_window,
  };
}

/** Parameter names and shapes a checkpoint of this config holds (for random models and checks). */
export function llamaParamSpecs(config: LlamaFamilyConfig): ParamSpec[] {
  return paramSpecs(dimsOf(config));
}

function paramSpecs(d: Dims): ParamSpec[] {
  const { C, H, Hkv, D, I, V } = d;
  const specs: ParamSpec[] = [{ name: "model.embed_tokens.weight", shape: [V, C] }];
  for (let l = 0; l < d.L; l++) {
    const p = `model.layers.${l}`;
    specs.push({ name: `${p}.input_layernorm.weight`, shape: [C] });
    for (const [proj, out] of [
      ["q_proj", H * D],
      ["k_proj", Hkv * D],
      ["v_proj", Hkv * D],
    ] as const) {
      specs.push({ name: `${p}.self_attn.${proj}.weight`, shape: [out, C] });
      if (d.qkvBias) specs.push({ name: `${p}.self_attn.${proj}.bias`, shape: [out] });
    }
    specs.push({ name: `${p}.self_attn.o_proj.weight`, shape: [C, H * D] });
    if (d.oBias) specs.push({ name: `${p}.self_attn.o_proj.bias`, shape: [C] });
    specs.push({ name: `${p}.post_attention_layernorm.weight`, shape: [C] });
    for (const [proj, shape] of [
      ["gate_proj", [I, C]],
      ["up_proj", [I, C]],
      ["down_proj", [C, I]],
    ] as const) {
      specs.push({ name: `${p}.mlp.${proj}.weight`, shape });
      if (d.mlpBias) specs.push({ name: `${p}.mlp.${proj}.bias`, shape: [shape[0]] });
    }
  }
  specs.push({ name: "model.norm.weight", shape: [C] });
  if (!d.tied) specs.push({ name: "lm_head.weight", shape: [V, C] });
  return specs;
}

interface LayerWeights {
  inputNorm: Tensor; // (C)
  postNorm: Tensor; // (C)
  inputNormName: string;
  postNormName: string;
  q: LinearLayer;
  k: LinearLayer;
  v: LinearLayer;
  o: LinearLayer;
  gate: LinearLayer;
  up: LinearLayer;
  down: LinearLayer;
}

/**
 * Saved activations of one layer (what backward reads). Under gradient checkpointing only x is the
 * layer's own; the rest is one set shared by every layer, refilled by recomputing the layer's
 * forward right before its backward.
 */
interface LayerActs {
  x: Tensor; // (R, C) layer input
  n1: Tensor; // (R, C) input_layernorm output
  rstd1: Tensor; // (R)
  qh: Tensor; // (B, H, T, D) roped queries
  kh: Tensor; // (B, Hkv, T, D) roped keys
  vh: Tensor; // (B, Hkv, T, D)
  probs: Tensor; // (B, H, T, T)
  atty: Tensor; // (R, H*D) attention output, (B, T, H, D), o_proj input
  x2: Tensor; // (R, C) residual after attention
  n2: Tensor; // (R, C)
  rstd2: Tensor; // (R)
  gate: Tensor; // (R, I)
  up: Tensor; // (R, I)
  h: Tensor; // (R, I) swiglu output, down_proj input
}

/** The Llama family's activations and scratch for one (B, T), on top of the boundary buffers. */
class Plan extends DecoderPlan {
  readonly layers: LayerActs[] = [];
  readonly discard: Tensor | null; // (R, C) a recomputed layer's output (checkpointing only)
  readonly xFinal: Tensor; // (R, C)
  readonly rstdf: Tensor; // (R)
  readonly cos: Tensor; // (T, D/2)
  readonly sin: Tensor; // (T, D/2)
  // forward scratch
  readonly qLin: Tensor; // (R, H*D) = (B, T, H, D)
  readonly kLin: Tensor; // (R, Hkv*D)
  readonly vLin: Tensor; // (R, Hkv*D)
  readonly qRot: Tensor; // (B, T, H, D)
  readonly kRot: Tensor; // (B, T, Hkv, D)
  readonly attnOut: Tensor; // (B, H, T, D)
  // backward scratch
  readonly dx: Tensor; // (R, C) gradient of the residual stream
  readonly dAtty: Tensor; // (R, H*D)
  readonly dAttnOut: Tensor; // (B, H, T, D)
  readonly dProbs: Tensor; // (B, H, T, T)
  readonly dScores: Tensor; // (B, H, T, T)
  readonly dQh: Tensor; // (B, H, T, D)
  readonly dKh: Tensor; // (B, Hkv, T, D)
  readonly dVh: Tensor; // (B, Hkv, T, D)
  readonly dQRot: Tensor; // (B, T, H, D)
  readonly dKRot: Tensor; // (B, T, Hkv, D)
  readonly dQLin: Tensor; // (R, H*D)
  readonly dKLin: Tensor; // (R, Hkv*D)
  readonly dVLin: Tensor; // (B, T, Hkv, D)
  readonly dH: Tensor; // (R, I)
  readonly dGate: Tensor; // (R, I)
  readonly dUp: Tensor; // (R, I)

  constructor(kernels: Kernels, d: Dims, B: number, T: number, layout: PlanLayout) {
    super(kernels.heap, B, T, d.V, d.C, layout);
    const R = B * T;
    const { C, H, Hkv, D, I } = d;
    const t = (shape: number[]): Tensor => this.tensor(shape);
    try {
      const acts = (): Omit<LayerActs, "x"> => ({
        n1: t([R, C]),
        rstd1: t([R]),
        qh: t([B, H, T, D]),
        kh: t([B, Hkv, T, D]),
        vh: t([B, Hkv, T, D]),
        probs: t([B, H, T, T]),
        atty: t([R, H * D]),
        x2: t([R, C]),
        n2: t([R, C]),
        rstd2: t([R]),
        gate: t([R, I]),
        up: t([R, I]),
        h: t([R, I]),
      });
      const shared = layout.checkpointing ? acts() : null;
      for (let l = 0; l < d.L; l++) this.layers.push({ ...(shared ?? acts()), x: t([R, C]) });
      this.discard = layout.checkpointing ? t([R, C]) : null;
      this.xFinal = t([R, C]);
      this.rstdf = t([R]);
      this.cos = t([T, D / 2]);
      this.sin = t([T, D / 2]);
      this.qLin = t([R, H * D]);
      this.kLin = t([R, Hkv * D]);
      this.vLin = t([R, Hkv * D]);
      this.qRot = t([B, T, H, D]);
      this.kRot = t([B, T, Hkv, D]);
      this.attnOut = t([B, H, T, D]);
      this.dx = t([R, C]);
      this.dAtty = t([R, H * D]);
      this.dAttnOut = t([B, H, T, D]);
      this.dProbs = t([B, H, T, T]);
      this.dScores = t([B, H, T, T]);
      this.dQh = t([B, H, T, D]);
      this.dKh = t([B, Hkv, T, D]);
      this.dVh = t([B, Hkv, T, D]);
      this.dQRot = t([B, T, H, D]);
      this.dKRot = t([B, T, Hkv, D]);
      this.dQLin = t([R, H * D]);
      this.dKLin = t([R, Hkv * D]);
      this.dVLin = t([B, T, Hkv, D]);
      this.dH = t([R, I]);
      this.dGate = t([R, I]);
      this.dUp = t([R, I]);
    } catch (err) {
      this.dispose();
      throw err;
    }
    // RoPE tables for positions 0..T-1 (HF's default position_ids for every row)
    const positions = Int32Array.from({ length: T }, (_, i) => i);
    const scaling = d.ropeScaling === undefined ? {} : { scaling: d.ropeScaling };
    const tables = ropeTables(D, positions, { theta: d.ropeTheta, ...scaling });
    this.cos.f32().set(tables.cos);
    this.sin.f32().set(tables.sin);
  }
}

/** Scratch of a cached step: one layer's activations (reused by every layer), no backward. */
class Step extends StepScratch {
  readonly x: Tensor; // (tokens, C) residual stream
  readonly n: Tensor; // (tokens, C)
  readonly rstd: Tensor; // (tokens)
  readonly cos: Tensor; // (tokens, D/2) at each new token's position
  readonly sin: Tensor; // (tokens, D/2)
  readonly qLin: Tensor; // (tokens, H*D)
  readonly kLin: Tensor; // (tokens, Hkv*D)
  readonly vLin: Tensor; // (tokens, Hkv*D)
  readonly qRot: Tensor; // (tokens, H*D)
  readonly kRot: Tensor; // (tokens, Hkv*D)
  readonly qh: Tensor; // (N, H, Tn, D)
  readonly kh: Tensor; // (N, Hkv, Tn, D)
  readonly vh: Tensor; // (N, Hkv, Tn, D)
  readonly attnOut: Tensor; // (N, H, Tn, D)
  readonly atty: Tensor; // (tokens, H*D)
  readonly x2: Tensor; // (tokens, C)
  readonly gate: Tensor; // (tokens, I)
  readonly up: Tensor; // (tokens, I)
  readonly h: Tensor; // (tokens, I)
  readonly nf: Tensor; // (max(tokens, logitRows), C)
  readonly rstdf: Tensor; // (max(tokens, logitRows))

  constructor(kernels: Kernels, d: Dims, capacity: StepCapacity, maxLength: number) {
    super(kernels.heap, cacheDimsOf(d), capacity, maxLength);
    const R = capacity.tokens;
    const { C, H, Hkv, D, I } = d;
    const t = (shape: number[]): Tensor => this.tensor(shape);
    try {
      this.x = t([R, C]);
      this.n = t([R, C]);
      this.rstd = t([R]);
      this.cos = t([R, D / 2]);
      this.sin = t([R, D / 2]);
      this.qLin = t([R, H * D]);
      this.kLin = t([R, Hkv * D]);
      this.vLin = t([R, Hkv * D]);
      this.qRot = t([R, H * D]);
      this.kRot = t([R, Hkv * D]);
      this.qh = t([R * H * D]);
      this.kh = t([R * Hkv * D]);
      this.vh = t([R * Hkv * D]);
      this.attnOut = t([R * H * D]);
      this.atty = t([R, H * D]);
      this.x2 = t([R, C]);
      this.gate = t([R, I]);
      this.up = t([R, I]);
      this.h = t([R, I]);
      const heads = Math.max(R, capacity.logitRows);
      this.nf = t([heads, C]);
      this.rstdf = t([heads]);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }
}

function cacheDimsOf(d: Dims): CacheDims {
  return { layers: d.L, heads: d.H, kvHeads: d.Hkv, headDim: d.D, hidden: d.C, vocab: d.V };
}

/** Attention views of one layer for grouped-query matmuls: (B*Hkv, g*T, D) against (B*Hkv, T, D). */
function gqa(d: Dims, B: number, T: number) {
  const g = d.H / d.Hkv;
  const BK = B * d.Hkv;
  return {
    q: (x: Tensor) => x.view([BK, g * T, d.D]),
    kv: (x: Tensor) => x.view([BK, T, d.D]),
    scores: (x: Tensor) => x.view([BK, g * T, T]),
  };
}

class LlamaModel extends DecoderModel<LlamaFamilyConfig, Plan, Step> {
  private readonly d: Dims;
  private readonly embed: Tensor; // (V, C)
  private readonly finalNorm: Tensor; // (C)
  private readonly layerWeights: LayerWeights[] = [];
  private readonly lmHead: LinearLayer;

  constructor(
    config: LlamaFamilyConfig,
    d: Dims,
    params: Map<string, Tensor>,
    kernels: Kernels,
    quantized: ReadonlyMap<string, QuantizedWeight> = new Map(),
  ) {
    super(config, params, kernels, {
      vocabSize: d.V,
      hiddenSize: d.C,
      maxPositions: d.maxPositions,
    });
    this.d = d;
    const factory = this.linearFactory(params, quantized);
    // nn.Linear: weight stored (out, in)
    const linear = (
      path: string,
      inF: number,
      outF: number,
      hasBias: boolean,
      weightName = `${path}.weight`,
    ): LinearLayer => {
      const biasName = hasBias ? `${path}.bias` : null;
      const shared = weightName === "model.embed_tokens.weight";
      return factory(
        { path, inFeatures: inF, outFeatures: outF, weightName, biasName, fanInFanOut: false },
        shared,
      );
    };
    this.embed = this.param("model.embed_tokens.weight");
    const { C, H, Hkv, D, I, V } = d;
    for (let l = 0; l < d.L; l++) {
      const p = `model.layers.${l}`;
      this.layerWeights.push({
        inputNormName: `${p}.input_layernorm.weight`,
        postNormName: `${p}.post_attention_layernorm.weight`,
        inputNorm: this.param(`${p}.input_layernorm.weight`),
        postNorm: this.param(`${p}.post_attention_layernorm.weight`),
        q: linear(`${p}.self_attn.q_proj`, C, H * D, d.qkvBias),
        k: linear(`${p}.self_attn.k_proj`, C, Hkv * D, d.qkvBias),
        v: linear(`${p}.self_attn.v_proj`, C, Hkv * D, d.qkvBias),
        o: linear(`${p}.self_attn.o_proj`, H * D, C, d.oBias),
        gate: linear(`${p}.mlp.gate_proj`, C, I, d.mlpBias),
        up: linear(`${p}.mlp.up_proj`, C, I, d.mlpBias),
        down: linear(`${p}.mlp.down_proj`, I, C, d.mlpBias),
      });
    }
    this.finalNorm = this.param("model.norm.weight");
    // a tied lm_head multiplies by the embedding matrix: its weight IS model.embed_tokens.weight
    this.lmHead = linear(
      "lm_head",
      C,
      V,
      false,
      d.tied ? "model.embed_tokens.weight" : "lm_head.weight",
    );
  }

  protected override createPlan(B: number, T: number, layout: PlanLayout): Plan {
    return new Plan(this.kernels, this.d, B, T, layout);
  }

  protected override checkSeqLen(T: number): void {
    if (this.d.slidingWindow !== null && T > this.d.slidingWindow) {
      throw new Error(
        `${this.modelType}: seqLen ${T} exceeds sliding_window ${this.d.slidingWindow}, which is not supported`,
      );
    }
  }

  protected override forwardPass(plan: Plan): void {
    const k = this.kernels;
    const d = this.d;
    k.embedding(plan.layers.length > 0 ? plan.layers[0].x : plan.xFinal, this.embed, plan.ids);
    for (let l = 0; l < d.L; l++)
      this.layerForward(plan, l, l + 1 < d.L ? plan.layers[l + 1].x : plan.xFinal);
    k.rmsnorm(plan.nf, plan.rstdf, plan.xFinal, this.finalNorm, d.eps);
  }

  /**
   * Layer l from its input plan.layers[l].x: fills its activations, writes its output to xOut
   * (R, C). recompute: gradient checkpointing's repeat of the layer before its backward.
   */
  private layerForward(plan: Plan, l: number, xOut: Tensor, recompute = false): void {
    const k = this.kernels;
    const d = this.d;
    const { B, T } = plan;
    const v = gqa(d, B, T);
    const { maskOut, lowerA } = causalProducts(T);
    const scale = 1 / Math.sqrt(d.D); // HF: self.scaling = head_dim ** -0.5
    const keyLengths = plan.keyLengths;
    const w = this.layerWeights[l];
    const a = plan.layers[l];
    // attention block
    k.rmsnorm(a.n1, a.rstd1, a.x, w.inputNorm, d.eps);
    w.q.forward(k, plan.qLin, a.n1, recompute);
    w.k.forward(k, plan.kLin, a.n1, recompute);
    w.v.forward(k, plan.vLin, a.n1, recompute);
    k.rope(plan.qRot, plan.qLin.view([B, T, d.H, d.D]), plan.cos, plan.sin);
    k.rope(plan.kRot, plan.kLin.view([B, T, d.Hkv, d.D]), plan.cos, plan.sin);
    k.permute0213(a.qh, plan.qRot); // (B, T, H, D) -> (B, H, T, D)
    k.permute0213(a.kh, plan.kRot);
    k.permute0213(a.vh, plan.vLin.view([B, T, d.Hkv, d.D]));
    k.matmul(v.scores(a.probs), v.q(a.qh), v.kv(a.kh), { transB: true, causal: maskOut }); // raw scores
    k.attentionSoftmax(a.probs, a.probs, { scale, causal: true, keyLengths });
    k.matmul(v.q(plan.attnOut), v.scores(a.probs), v.kv(a.vh), { causal: lowerA });
    k.permute0213(a.atty.view([B, T, d.H, d.D]), plan.attnOut);
    w.o.forward(k, a.x2, a.atty, recompute);
    k.add(a.x2, a.x2, a.x);
    // MLP block
    k.rmsnorm(a.n2, a.rstd2, a.x2, w.postNorm, d.eps);
    w.gate.forward(k, a.gate, a.n2, recompute);
    w.up.forward(k, a.up, a.n2, recompute);
    k.swiglu(a.h, a.gate, a.up);
    w.down.forward(k, xOut, a.h, recompute);
    k.add(xOut, xOut, a.x2);
  }

  protected override headLayer(): LinearLayer {
    return this.lmHead;
  }

  protected override cacheDims(): CacheDims {
    return cacheDimsOf(this.d);
  }

  protected override createStepScratch(capacity: StepCapacity, maxLength: number): Step {
    return new Step(this.kernels, this.d, capacity, maxLength);
  }

  /** forwardPass's layer for N rows x Tn new tokens, each at its own position, keys from the cache. */
  protected override forwardStep(
    cache: DecoderKvCache<Step>,
    s: Step,
    rows: readonly number[],
    Tn: number,
  ): Tensor {
    const k = this.kernels;
    const d = this.d;
    const { C, H, Hkv, D, I } = d;
    const N = rows.length;
    const R = N * Tn;
    const scale = 1 / Math.sqrt(D);
    const x = s.x.view([R, C]);
    const n = s.n.view([R, C]);
    const rstd = s.rstd.view([R]);
    const cos = s.cos.view([R, D / 2]);
    const sin = s.sin.view([R, D / 2]);
    const qLin = s.qLin.view([R, H * D]);
    const kLin = s.kLin.view([R, Hkv * D]);
    const vLin = s.vLin.view([R, Hkv * D]);
    const qRot = s.qRot.view([N, Tn, H, D]);
    const kRot = s.kRot.view([N, Tn, Hkv, D]);
    const qh = s.qh.view([N, H, Tn, D]);
    const kh = s.kh.view([N, Hkv, Tn, D]);
    const vh = s.vh.view([N, Hkv, Tn, D]);
    const attnOut = s.attnOut.view([N, H, Tn, D]);
    const atty = s.atty.view([R, H * D]);
    const x2 = s.x2.view([R, C]);
    const gate = s.gate.view([R, I]);
    const up = s.up.view([R, I]);
    const h = s.h.view([R, I]);
    const heads = (t: Tensor, count: number) => (r: number) =>
      t.view([count, Tn, D], r * count * Tn * D);
    // RoPE tables per new token (position = the row's cached length + t): the rope kernel applies
    // table row t to time step t, so (1, R, heads, D) views rotate every token by its own angle
    const scaling = d.ropeScaling === undefined ? {} : { scaling: d.ropeScaling };
    const tables = ropeTables(D, s.positions.i32().subarray(0, R), {
      theta: d.ropeTheta,
      ...scaling,
    });
    cos.f32().set(tables.cos);
    sin.f32().set(tables.sin);
    k.embedding(x, this.embed, s.ids.view([R]));
    for (let l = 0; l < d.L; l++) {
      const w = this.layerWeights[l];
      // attention block
      k.rmsnorm(n, rstd, x, w.inputNorm, d.eps);
      w.q.forward(k, qLin, n);
      w.k.forward(k, kLin, n);
      w.v.forward(k, vLin, n);
      k.rope(qRot.view([1, R, H, D]), qLin.view([1, R, H, D]), cos, sin);
      k.rope(kRot.view([1, R, Hkv, D]), kLin.view([1, R, Hkv, D]), cos, sin);
      k.permute0213(qh, qRot); // (N, Tn, H, D) -> (N, H, Tn, D)
      k.permute0213(kh, kRot);
      k.permute0213(vh, vLin.view([N, Tn, Hkv, D]));
      cachedAttention(
        k,
        cache,
        l,
        rows,
        heads(qh, H),
        heads(kh, Hkv),
        heads(vh, Hkv),
        attnOut,
        s.scores,
        scale,
      );
      k.permute0213(atty.view([N, Tn, H, D]), attnOut);
      w.o.forward(k, x2, atty);
      k.add(x2, x2, x);
      // MLP block (the layer output overwrites x: its input is no longer needed)
      k.rmsnorm(n, rstd, x2, w.postNorm, d.eps);
      w.gate.forward(k, gate, n);
      w.up.forward(k, up, n);
      k.swiglu(h, gate, up);
      w.down.forward(k, x, h);
      k.add(x, x, x2);
    }
    return x;
  }

  protected override headStep(s: Step, logits: Tensor, hidden: Tensor): void {
    const rows = logits.shape[0];
    const nf = s.nf.view([rows, this.d.C]);
    this.kernels.rmsnorm(nf, s.rstdf.view([rows]), hidden, this.finalNorm, this.d.eps);
    this.lmHead.forward(this.kernels, logits, nf);
  }

  /** Reads plan.dn (d nf); accumulates into paramGrads and adapters; overwrites inputsEmbedsGrad (R, C). */
  protected override backwardPass(
    plan: Plan,
    paramGrads: ReadonlyMap<string, Tensor> | undefined,
    inputsEmbedsGrad: Tensor | null,
  ): void {
    const k = this.kernels;
    const d = this.d;
    const { B, T } = plan;
    const v = gqa(d, B, T);
    const { maskOut, lowerA, upperA } = causalProducts(T);
    const scale = 1 / Math.sqrt(d.D);
    const dx = plan.dx;
    const dn = plan.dn;
    const dEmbed = gradFor(paramGrads, "model.embed_tokens.weight", this.embed);
    // PyTorch autograd semantics: layer 0's input gradient (the q/k/v dInp products and the
    // input-norm backward into d embed_tokens(ids)) is computed only when something needs it: the
    // embedding gradient, layer 0's input-norm weight gradient (it reads the same dn), or the
    // caller's inputsEmbedsGrad. LoRA training needs none of them; adapters get theirs regardless.
    const needInputGrad =
      dEmbed !== null ||
      inputsEmbedsGrad !== null ||
      (d.L > 0 &&
        gradFor(paramGrads, this.layerWeights[0].inputNormName, this.layerWeights[0].inputNorm) !==
          null);
    // the first writer of each gradient buffer overwrites it (no zeroing pass); later ones add
    const overwrite = { accumulate: false };
    k.rmsnormBackward(
      dx,
      gradFor(paramGrads, "model.norm.weight", this.finalNorm),
      dn,
      plan.xFinal,
      this.finalNorm,
      plan.rstdf,
      overwrite,
    );
    for (let l = d.L - 1; l >= 0; l--) {
      const w = this.layerWeights[l];
      const a = plan.layers[l];
      // gradient checkpointing: refill the shared activations from the saved input (adapters
      // replay their dropout masks); the output is recomputed into a discarded buffer
      if (plan.discard !== null) this.layerForward(plan, l, plan.discard, true);
      // MLP block (dx holds d xOut; the residual passes it to d x2 unchanged)
      w.down.backward(k, plan.dH, dx, a.h, paramGrads, true);
      k.swigluBackward(plan.dGate, plan.dUp, a.gate, a.up, plan.dH, overwrite);
      w.gate.backward(k, dn, plan.dGate, a.n2, paramGrads, true);
      w.up.backward(k, dn, plan.dUp, a.n2, paramGrads);
      k.rmsnormBackward(
        dx,
        gradFor(paramGrads, w.postNormName, w.postNorm),
        dn,
        a.x2,
        w.postNorm,
        a.rstd2,
      );
      // attention block (dx now holds d x2 = d o_proj output; the residual passes it to d x)
      w.o.backward(k, plan.dAtty, dx, a.atty, paramGrads, true);
      k.permute0213(plan.dAttnOut, plan.dAtty.view([B, T, d.H, d.D])); // -> (B, H, T, D)
      k.matmul(v.scores(plan.dProbs), v.q(plan.dAttnOut), v.kv(a.vh), {
        transB: true,
        causal: maskOut,
      });
      k.matmul(v.kv(plan.dVh), v.scores(a.probs), v.q(plan.dAttnOut), {
        transA: true,
        causal: upperA,
      }); // sums the g heads
      k.attentionSoftmaxBackward(plan.dScores, a.probs, plan.dProbs, scale, overwrite);
      k.matmul(v.q(plan.dQh), v.scores(plan.dScores), v.kv(a.kh), { causal: lowerA });
      k.matmul(v.kv(plan.dKh), v.scores(plan.dScores), v.q(a.qh), { transA: true, causal: upperA });
      k.permute0213(plan.dQRot, plan.dQh); // (B, H, T, D) -> (B, T, H, D)
      k.permute0213(plan.dKRot, plan.dKh);
      k.permute0213(plan.dVLin, plan.dVh);
      k.ropeBackward(plan.dQLin.view([B, T, d.H, d.D]), plan.dQRot, plan.cos, plan.sin, overwrite);
      k.ropeBackward(
        plan.dKLin.view([B, T, d.Hkv, d.D]),
        plan.dKRot,
        plan.cos,
        plan.sin,
        overwrite,
      );
      const dn1 = l > 0 || needInputGrad ? dn : null; // d n1, or null: layer 0's input gradient is skipped
      w.q.backward(k, dn1, plan.dQLin, a.n1, paramGrads, true);
      w.k.backward(k, dn1, plan.dKLin, a.n1, paramGrads);
      w.v.backward(k, dn1, plan.dVLin.view([B * T, d.Hkv * d.D]), a.n1, paramGrads);
      if (dn1 !== null)
        k.rmsnormBackward(
          dx,
          gradFor(paramGrads, w.inputNormName, w.inputNorm),
          dn1,
          a.x,
          w.inputNorm,
          a.rstd1,
        );
    }
    // dx = d embed_tokens(ids) when needInputGrad (stale otherwise, and then unread)
    if (dEmbed !== null) k.embeddingBackward(dEmbed, dx, plan.ids);
    if (inputsEmbedsGrad !== null) k.copy(inputsEmbedsGrad, dx);
  }
}

/** Registry entry: builds a Llama-family model from its config and checkpoint. */
export async function createLlama(
  config: LlamaFamilyConfig,
  checkpoint: CheckpointSource,
  kernels: Kernels,
  source: string,
  storage: WeightLoadOptions = {},
): Promise<CausalLM> {
  const d = dimsOf(config);
  const specs = paramSpecs(d);
  const { params, quantized } = await loadDecoderParams(
    kernels,
    checkpoint,
    specs,
    source,
    storage,
    {
      embeddings: ["model.embed_tokens.weight"],
      fanInFanOut: () => false,
    },
  );
  return new LlamaModel(config, d, params, kernels, quantized);
}
