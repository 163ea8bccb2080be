// Gemma 3 text models (model_type gemma3_text: Gemma 3 270M / 1B, the text stack of the larger
// ones): forward and backward written out explicitly (llm.c style, no autograd tape), the backward
// being the forward read in reverse with d-prefixed names. Mirrors transformers 5.18's
// modeling_gemma3.py (Gemma3ForCausalLM):
//   x = embed(ids) * sqrt(C)        (Gemma3TextScaledWordEmbedding; the factor in the embedding's
//                                    dtype: float32 here, or the checkpoint's 16-bit type)
//   per layer: n1 = N_in(x); q,k,v = n1 Wq^T, ...; q = N_q(q), k = N_k(k) per head (over D);
//              RoPE(q, k) with the layer type's tables; GQA attention with scores scaled by
//              query_pre_attn_scalar^-1/2, local (sliding_attention) layers masked to their
//              last sliding_window keys; x2 = x + N_postattn(o_proj(attn));
//              x' = x2 + N_postff(down(gelu_tanh(gate(n2)) * up(n2))), n2 = N_preff(x2)
//   logits = N_final(x) W_lm^T   (W_lm = embedding when tie_word_embeddings, Gemma's default)
// where every N is Gemma3RMSNorm: x * rstd * (1 + w), in float32. The kernels' RMSNorm multiplies
// by a weight, so the model keeps (1 + w) of every norm in `effective` tensors, refreshed from the
// parameters at the start of each forward (full fine-tuning changes w in place); the weight
// gradient of x * rstd * (1 + w) with respect to w is the kernel's dWeight unchanged.
// RoPE: sliding_attention layers use rope_local_base_freq (default RoPE), full_attention layers
// rope_theta with rope_scaling (Gemma3RotaryEmbedding per layer type). Biases on q/k/v/o when
// attention_bias. Positions are 0..T-1 for every row; padding is right padding, masked on the key
// side (keyLengths). embed_tokens has padding_idx = pad_token_id: that row gets no gradient from
// the embedding lookup (only from a tied lm_head).
//
// Attention: the causal attention every decoder shares (attention.ts: tiled or full), with the
// layer's score scale and, on sliding_attention layers, its window. final_logit_softcapping is refused (not implemented; unset in Gemma 3's configs);
// attn_logit_softcapping is ignored, as Gemma3Attention never applies it.
//
// Memory, gradient checkpointing and cached decoding follow llama.ts (decoder-base.ts holds the
// plumbing, kv-cache.ts the cache). Legend: B batch, T time, C hidden, H heads, Hkv kv heads,
// D head dim, I intermediate, V vocab, R = B*T rows, L layers.

import type { Gemma3TextConfig, GemmaLayerType } from "../io/hf-config.js";
import type { GeluApproximate, Kernels } from "../kernels/kernels.js";
import { type RopeScaling, ropeTables } from "../kernels/ref/rope.js";
import type { QuantizedWeight } from "../quant/quantized-linear.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import type { Tensor } from "../tensor/tensor.js";
import { AttentionPlan, type Heads } from "./attention.js";
import { type CheckpointSource, gradFor, type LinearLayer, type ParamSpec } from "./common.js";
import { DecoderModel, DecoderPlan, loadDecoderParams, type PlanLayout } from "./decoder-base.js";
import type { EmbeddingTable } from "./embedding-table.js";
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

interface Rope {
  theta: number;
  scaling?: RopeScaling;
}

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
  bias: boolean;
  gelu: GeluApproximate;
  /** Attention score scale: query_pre_attn_scalar^-1/2. */
  scale: number;
  /** Keys a sliding_attention query sees (itself included). */
  window: number;
  layerTypes: readonly GemmaLayerType[];
  ropeFull: Rope;
  ropeSliding: Rope;
  maxPositions: number;
  padId: number | null;
}

function dimsOf(config: Gemma3TextConfig): Dims {
  const { num_attention_heads: H, num_key_value_heads: Hkv, head_dim: D } = config;
  if (D % 2 !== 0) throw new Error(`${config.model_type}: head_dim ${D} must be even for RoPE`);
  if (config.final_logit_softcapping !== null) {
    throw new Error(
      `${config.model_type}: final_logit_softcapping ${config.final_logit_softcapping} is not supported (only null)`,
    );
  }
  const rope = (p: Gemma3TextConfig["rope_full"]): Rope => {
    const scaling = ropeScalingOf(p.rope_scaling, config.model_type);
    return scaling === undefined ? { theta: p.rope_theta } : { theta: p.rope_theta, scaling };
  };
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
    bias: config.attention_bias,
    gelu: config.gelu_approximate,
    scale: config.query_pre_attn_scalar ** -0.5,
    window: config.sliding_window,
    layerTypes: config.layer_types,
    ropeFull: rope(config.rope_full),
    ropeSliding: rope(config.rope_sliding),
    maxPositions: config.max_position_embeddings,
    padId: config.pad_token_id,
  };
}

const LAYER_NORMS = [
  "input_layernorm",
  "post_attention_layernorm",
  "pre_feedforward_layernorm",
  "post_feedforward_layernorm",
] as const;

function paramSpecs(d: Dims): ParamSpec[] {
  const { C, H, Hkv, D, I, V } = d;
  const specs: ParamSpec[] = [{ name: "model.embed_tokens.weight", shape: [V, C] }];
  for (let l = 0; l < d.L; l++) {
    const p = `model.layers.${l}`;
    for (const [proj, out, inp] of [
      ["q_proj", H * D, C],
      ["k_proj", Hkv * D, C],
      ["v_proj", Hkv * D, C],
      ["o_proj", C, H * D],
    ] as const) {
      specs.push({ name: `${p}.self_attn.${proj}.weight`, shape: [out, inp] });
      if (d.bias) specs.push({ name: `${p}.self_attn.${proj}.bias`, shape: [out] });
    }
    specs.push({ name: `${p}.self_attn.q_norm.weight`, shape: [D] });
    specs.push({ name: `${p}.self_attn.k_norm.weight`, shape: [D] });
    specs.push({ name: `${p}.mlp.gate_proj.weight`, shape: [I, C] });
    specs.push({ name: `${p}.mlp.up_proj.weight`, shape: [I, C] });
    specs.push({ name: `${p}.mlp.down_proj.weight`, shape: [C, I] });
    for (const norm of LAYER_NORMS) specs.push({ name: `${p}.${norm}.weight`, shape: [C] });
  }
  specs.push({ name: "model.norm.weight", shape: [C] });
  if (!d.tied) specs.push({ name: "lm_head.weight", shape: [V, C] });
  return specs;
}

/** A Gemma RMSNorm: its parameter w (HF name) and the (1 + w) the kernels multiply by. */
interface Norm {
  name: string;
  weight: Tensor; // (n) the parameter w
  effective: Tensor; // (n) 1 + w
}

interface LayerWeights {
  sliding: boolean;
  inputNorm: Norm; // (C)
  postAttnNorm: Norm; // (C)
  preFfNorm: Norm; // (C)
  postFfNorm: Norm; // (C)
  qNorm: Norm; // (D)
  kNorm: Norm; // (D)
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
 * layer's own; the rest is shared by every layer and refilled by recomputing the layer's forward.
 */
interface LayerActs {
  x: Tensor; // (R, C) layer input
  n1: Tensor; // (R, C) input_layernorm output
  rstd1: Tensor; // (R)
  qLin: Tensor; // (R, H*D) q_proj output, q_norm input
  rstdQ: Tensor; // (R*H)
  kLin: Tensor; // (R, Hkv*D)
  rstdK: Tensor; // (R*Hkv)
  qh: Tensor; // (B, H, T, D) normed, roped queries
  kh: Tensor; // (B, Hkv, T, D)
  vh: Tensor; // (B, Hkv, T, D)
  probs: Tensor | null; // (B, H, T, T) under "full" attention (attention.ts), else null
  atty: Tensor; // (R, H*D) attention output, o_proj input
  o: Tensor; // (R, C) o_proj output, post_attention_layernorm input
  rstdO: Tensor; // (R)
  x2: Tensor; // (R, C) residual after attention
  n2: Tensor; // (R, C) pre_feedforward_layernorm output
  rstd2: Tensor; // (R)
  gate: Tensor; // (R, I)
  up: Tensor; // (R, I)
  act: Tensor; // (R, I) gelu(gate)
  h: Tensor; // (R, I) act * up, down_proj input
  m: Tensor; // (R, C) down_proj output, post_feedforward_layernorm input
  rstdM: Tensor; // (R)
}

/** RoPE tables of both layer types for some positions. */
interface RopeTables {
  cosFull: Tensor; // (rows, D/2)
  sinFull: Tensor;
  cosSliding: Tensor;
  sinSliding: Tensor;
}

function fillRopeTables(d: Dims, t: RopeTables, positions: Int32Array): void {
  for (const [rope, cos, sin] of [
    [d.ropeFull, t.cosFull, t.sinFull],
    [d.ropeSliding, t.cosSliding, t.sinSliding],
  ] as const) {
    const tables = ropeTables(d.D, positions, rope);
    cos.f32().set(tables.cos);
    sin.f32().set(tables.sin);
  }
}

/** Gemma's activations and scratch for one (B, T), on top of the boundary buffers. */
class Plan extends DecoderPlan implements RopeTables {
  readonly layers: LayerActs[] = [];
  readonly attention: AttentionPlan; // attention's scratch (and its saved state per layer)
  readonly discard: Tensor | null; // (R, C) a recomputed layer's output (checkpointing only)
  readonly xFinal: Tensor; // (R, C)
  readonly rstdf: Tensor; // (R)
  readonly cosFull: Tensor; // (T, D/2)
  readonly sinFull: Tensor;
  readonly cosSliding: Tensor;
  readonly sinSliding: Tensor;
  // forward scratch
  readonly qn: Tensor; // (R, H*D) = (B, T, H, D) normed queries
  readonly kn: Tensor; // (R, Hkv*D)
  readonly vLin: Tensor; // (R, Hkv*D)
  readonly qRot: Tensor; // (B, T, H, D)
  readonly kRot: Tensor; // (B, T, Hkv, D)
  readonly attnOut: Tensor; // (B, H, T, D)
  readonly normed: Tensor; // (R, C) a post-norm's output before the residual add
  // backward scratch
  readonly dx: Tensor; // (R, C) gradient of the residual stream
  readonly dBranch: Tensor; // (R, C) d o or d m (a post-norm's input gradient)
  readonly dAtty: Tensor; // (R, H*D)
  readonly dAttnOut: Tensor; // (B, H, T, D)
  readonly dQh: Tensor; // (B, H, T, D)
  readonly dKh: Tensor; // (B, Hkv, T, D)
  readonly dVh: Tensor; // (B, Hkv, T, D)
  readonly dQRot: Tensor; // (B, T, H, D)
  readonly dKRot: Tensor; // (B, T, Hkv, D)
  readonly dQn: Tensor; // (R, H*D)
  readonly dKn: Tensor; // (R, Hkv*D)
  readonly dQLin: Tensor; // (R, H*D)
  readonly dKLin: Tensor; // (R, Hkv*D)
  readonly dVLin: Tensor; // (B, T, Hkv, D)
  readonly dH: Tensor; // (R, I)
  readonly dAct: Tensor; // (R, I)
  readonly dGate: Tensor; // (R, I)
  readonly dUp: Tensor; // (R, I)

  constructor(kernels: Kernels, d: Dims, B: number, T: number, layout: PlanLayout) {
    super(kernels.heap, B, T, d.V, d.C, layout);
    const R = B * T;
    const { C, H, Hkv, D, I } = d;
    const t = (shape: number[]): Tensor => this.tensor(shape);
    try {
      const { attention, attentionTile } = layout;
      this.attention = new AttentionPlan(t, { B, T, H, Hkv, D }, attention, attentionTile);
      const acts = (): Omit<LayerActs, "x"> => ({
        n1: t([R, C]),
        rstd1: t([R]),
        qLin: t([R, H * D]),
        rstdQ: t([R * H]),
        kLin: t([R, Hkv * D]),
        rstdK: t([R * Hkv]),
        qh: t([B, H, T, D]),
        kh: t([B, Hkv, T, D]),
        vh: t([B, Hkv, T, D]),
        probs: this.attention.savedBuffer(),
        atty: t([R, H * D]),
        o: t([R, C]),
        rstdO: t([R]),
        x2: t([R, C]),
        n2: t([R, C]),
        rstd2: t([R]),
        gate: t([R, I]),
        up: t([R, I]),
        act: t([R, I]),
        h: t([R, I]),
        m: t([R, C]),
        rstdM: t([R]),
      });
      const shared = layout.checkpointing ? acts() : null;
      for (let l = 0; l < d.L; l++) this.layers.push({ ...(shared ?? acts()), x: t([R, C]) });
      this.discard = layout.checkpointing ? t([R, C]) : null;
      this.xFinal = t([R, C]);
      this.rstdf = t([R]);
      this.cosFull = t([T, D / 2]);
      this.sinFull = t([T, D / 2]);
      this.cosSliding = t([T, D / 2]);
      this.sinSliding = t([T, D / 2]);
      this.qn = t([R, H * D]);
      this.kn = t([R, Hkv * D]);
      this.vLin = t([R, Hkv * D]);
      this.qRot = t([B, T, H, D]);
      this.kRot = t([B, T, Hkv, D]);
      this.attnOut = t([B, H, T, D]);
      this.normed = t([R, C]);
      this.dx = t([R, C]);
      this.dBranch = t([R, C]);
      this.dAtty = t([R, H * D]);
      this.dAttnOut = t([B, H, T, D]);
      this.dQh = t([B, H, T, D]);
      this.dKh = t([B, Hkv, T, D]);
      this.dVh = t([B, Hkv, T, D]);
      this.dQRot = t([B, T, H, D]);
      this.dKRot = t([B, T, Hkv, D]);
      this.dQn = t([R, H * D]);
      this.dKn = t([R, Hkv * D]);
      this.dQLin = t([R, H * D]);
      this.dKLin = t([R, Hkv * D]);
      this.dVLin = t([B, T, Hkv, D]);
      this.dH = t([R, I]);
      this.dAct = t([R, I]);
      this.dGate = t([R, I]);
      this.dUp = t([R, I]);
    } catch (err) {
      this.dispose();
      throw err;
    }
    // positions 0..T-1 (HF's default position_ids for every row)
    fillRopeTables(
      d,
      this,
      Int32Array.from({ length: T }, (_, i) => i),
    );
  }
}

/** Scratch of a cached step: one layer's activations (reused by every layer), no backward. */
class Step extends StepScratch implements RopeTables {
  readonly x: Tensor; // (tokens, C) residual stream
  readonly n: Tensor; // (tokens, C)
  readonly rstd: Tensor; // (tokens)
  readonly rstdHeads: Tensor; // (tokens * H)
  readonly cosFull: Tensor; // (tokens, D/2) at each new token's position
  readonly sinFull: Tensor;
  readonly cosSliding: Tensor;
  readonly sinSliding: Tensor;
  readonly qLin: Tensor; // (tokens, H*D)
  readonly kLin: Tensor; // (tokens, Hkv*D)
  readonly vLin: Tensor; // (tokens, Hkv*D)
  readonly qn: Tensor; // (tokens, H*D)
  readonly kn: Tensor; // (tokens, Hkv*D)
  readonly qRot: Tensor; // (tokens, H*D)
  readonly kRot: Tensor; // (tokens, Hkv*D)
  readonly qh: Tensor; // (N, H, Tn, D)
  readonly kh: Tensor; // (N, Hkv, Tn, D)
  readonly vh: Tensor; // (N, Hkv, Tn, D)
  readonly attnOut: Tensor; // (N, H, Tn, D)
  readonly atty: Tensor; // (tokens, H*D)
  readonly branch: Tensor; // (tokens, C) o_proj / down_proj output
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
      this.rstdHeads = t([R * H]);
      this.cosFull = t([R, D / 2]);
      this.sinFull = t([R, D / 2]);
      this.cosSliding = t([R, D / 2]);
      this.sinSliding = t([R, D / 2]);
      this.qLin = t([R, H * D]);
      this.kLin = t([R, Hkv * D]);
      this.vLin = t([R, Hkv * D]);
      this.qn = t([R, H * D]);
      this.kn = t([R, Hkv * D]);
      this.qRot = t([R, H * D]);
      this.kRot = t([R, Hkv * D]);
      this.qh = t([R * H * D]);
      this.kh = t([R * Hkv * D]);
      this.vh = t([R * Hkv * D]);
      this.attnOut = t([R * H * D]);
      this.atty = t([R, H * D]);
      this.branch = t([R, C]);
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

/** A layer's roped queries, keys and values as attention.ts' Heads. */
function heads(a: LayerActs): [Heads, Heads, Heads] {
  return [{ tensor: a.qh }, { tensor: a.kh }, { tensor: a.vh }];
}

class GemmaModel extends DecoderModel<Gemma3TextConfig, Plan, Step> {
  private readonly d: Dims;
  private readonly embed: EmbeddingTable; // (V, C), on the heap or off it
  /** sqrt(C) rounded to the embedding's dtype (Gemma3TextScaledWordEmbedding). */
  private readonly embedScale: number;
  private readonly finalNorm: Norm; // (C)
  private readonly norms: Norm[] = []; // every norm, for refreshNorms
  private readonly layerWeights: LayerWeights[] = [];
  private readonly lmHead: LinearLayer;

  constructor(
    config: Gemma3TextConfig,
    d: Dims,
    params: Map<string, Tensor>,
    kernels: Kernels,
    embedScale: number,
    quantized: ReadonlyMap<string, QuantizedWeight> = new Map(),
  ) {
    super(config, params, kernels, {
      vocabSize: d.V,
      hiddenSize: d.C,
      maxPositions: d.maxPositions,
    });
    this.d = d;
    this.embedScale = embedScale;
    const factory = this.linearFactory(params, quantized);
    // nn.Linear: weight stored (out, in)
    const linear = (path: string, inF: number, outF: number, hasBias: boolean): LinearLayer =>
      factory({
        path,
        inFeatures: inF,
        outFeatures: outF,
        weightName: `${path}.weight`,
        biasName: hasBias ? `${path}.bias` : null,
        fanInFanOut: false,
      });
    this.embed = this.embeddingTable("model.embed_tokens.weight", quantized);
    const { C, H, Hkv, D, I, V } = d;
    try {
      const norm = (name: string): Norm => {
        const weight = this.param(name);
        const n = { name, weight, effective: kernels.heap.tensor(weight.shape) };
        this.norms.push(n);
        return n;
      };
      for (let l = 0; l < d.L; l++) {
        const p = `model.layers.${l}`;
        this.layerWeights.push({
          sliding: d.layerTypes[l] === "sliding_attention",
          inputNorm: norm(`${p}.input_layernorm.weight`),
          postAttnNorm: norm(`${p}.post_attention_layernorm.weight`),
          preFfNorm: norm(`${p}.pre_feedforward_layernorm.weight`),
          postFfNorm: norm(`${p}.post_feedforward_layernorm.weight`),
          qNorm: norm(`${p}.self_attn.q_norm.weight`),
          kNorm: norm(`${p}.self_attn.k_norm.weight`),
          q: linear(`${p}.self_attn.q_proj`, C, H * D, d.bias),
          k: linear(`${p}.self_attn.k_proj`, C, Hkv * D, d.bias),
          v: linear(`${p}.self_attn.v_proj`, C, Hkv * D, d.bias),
          o: linear(`${p}.self_attn.o_proj`, H * D, C, d.bias),
          gate: linear(`${p}.mlp.gate_proj`, C, I, false),
          up: linear(`${p}.mlp.up_proj`, C, I, false),
          down: linear(`${p}.mlp.down_proj`, I, C, false),
        });
      }
      this.finalNorm = norm("model.norm.weight");
    } catch (err) {
      for (const n of this.norms) n.effective.dispose();
      throw err;
    }
    // a tied lm_head multiplies by the embedding matrix: its weight IS model.embed_tokens.weight
    const headWeight = d.tied ? "model.embed_tokens.weight" : "lm_head.weight";
    this.lmHead = factory(
      {
        path: "lm_head",
        inFeatures: C,
        outFeatures: V,
        weightName: headWeight,
        biasName: null,
        fanInFanOut: false,
      },
      d.tied,
    );
  }

  /** effective = 1 + w for every norm (Gemma3RMSNorm's float32 `1.0 + weight`). */
  private refreshNorms(): void {
    const k = this.kernels;
    for (const n of this.norms) {
      if (n.weight.dtype === "f32") {
        // by kernels: a trained weight may be newer on a deferred engine's device than in the heap
        k.fill(n.effective, 1);
        k.add(n.effective, n.effective, n.weight);
        continue;
      }
      const w = n.weight.toArray(); // 16-bit weights are frozen: the heap holds them
      const e = n.effective.f32();
      for (let i = 0; i < w.length; i++) e[i] = 1 + w[i];
      k.upload(n.effective);
    }
  }

  override dispose(): void {
    for (const n of this.norms) n.effective.dispose();
    this.norms.length = 0;
    super.dispose();
  }

  protected override createPlan(B: number, T: number, layout: PlanLayout): Plan {
    return new Plan(this.kernels, this.d, B, T, layout);
  }

  protected override forwardPass(plan: Plan): void {
    const k = this.kernels;
    const d = this.d;
    this.refreshNorms();
    const x0 = plan.layers.length > 0 ? plan.layers[0].x : plan.xFinal;
    this.embed.lookup(k, x0, plan.ids);
    k.scale(x0, x0, this.embedScale);
    for (let l = 0; l < d.L; l++)
      this.layerForward(plan, l, l + 1 < d.L ? plan.layers[l + 1].x : plan.xFinal);
    k.rmsnorm(plan.nf, plan.rstdf, plan.xFinal, this.finalNorm.effective, d.eps);
  }

  /**
   * Layer l from its input plan.layers[l].x: fills its activations, writes its output to xOut
   * (R, C). recompute: gradient checkpointing's repeat of the layer before its backward.
   */
  private layerForward(plan: Plan, l: number, xOut: Tensor, recompute = false): void {
    const k = this.kernels;
    const d = this.d;
    const { B, T } = plan;
    const R = B * T;
    const { H, Hkv, D, eps } = d;
    const w = this.layerWeights[l];
    const a = plan.layers[l];
    const [cos, sin] = w.sliding
      ? [plan.cosSliding, plan.sinSliding]
      : [plan.cosFull, plan.sinFull];
    // attention block
    k.rmsnorm(a.n1, a.rstd1, a.x, w.inputNorm.effective, eps);
    w.q.forward(k, a.qLin, a.n1, recompute);
    w.k.forward(k, a.kLin, a.n1, recompute);
    w.v.forward(k, plan.vLin, a.n1, recompute);
    // q_norm / k_norm over each head's D values
    k.rmsnorm(plan.qn.view([R * H, D]), a.rstdQ, a.qLin.view([R * H, D]), w.qNorm.effective, eps);
    k.rmsnorm(
      plan.kn.view([R * Hkv, D]),
      a.rstdK,
      a.kLin.view([R * Hkv, D]),
      w.kNorm.effective,
      eps,
    );
    k.rope(plan.qRot, plan.qn.view([B, T, H, D]), cos, sin);
    k.rope(plan.kRot, plan.kn.view([B, T, Hkv, D]), cos, sin);
    k.permute0213(a.qh, plan.qRot); // (B, T, H, D) -> (B, H, T, D)
    k.permute0213(a.kh, plan.kRot);
    k.permute0213(a.vh, plan.vLin.view([B, T, Hkv, D]));
    this.attentionForward(plan, a, w.sliding);
    k.permute0213(a.atty.view([B, T, H, D]), plan.attnOut);
    w.o.forward(k, a.o, a.atty, recompute);
    k.rmsnorm(plan.normed, a.rstdO, a.o, w.postAttnNorm.effective, eps);
    k.add(a.x2, a.x, plan.normed);
    // MLP block
    k.rmsnorm(a.n2, a.rstd2, a.x2, w.preFfNorm.effective, eps);
    w.gate.forward(k, a.gate, a.n2, recompute);
    w.up.forward(k, a.up, a.n2, recompute);
    k.gelu(a.act, a.gate, d.gelu);
    k.mul(a.h, a.act, a.up);
    w.down.forward(k, a.m, a.h, recompute);
    k.rmsnorm(plan.normed, a.rstdM, a.m, w.postFfNorm.effective, eps);
    k.add(xOut, a.x2, plan.normed);
  }

  /** plan.attnOut = softmax(scale * qh kh^T, causal, key lengths, window) vh (attention.ts). */
  private attentionForward(plan: Plan, a: LayerActs, sliding: boolean): void {
    const window = sliding ? this.d.window : null;
    plan.attention.forward(this.kernels, plan.attnOut, ...heads(a), plan.keyLengths, a.probs, {
      scale: this.d.scale,
      window,
    });
  }

  /** From plan.dAttnOut: plan.dQh, dKh, dVh (overwritten). */
  private attentionBackward(plan: Plan, a: LayerActs, sliding: boolean): void {
    const dHeads: [Heads, Heads, Heads] = [
      { tensor: plan.dQh },
      { tensor: plan.dKh },
      { tensor: plan.dVh },
    ];
    plan.attention.backward(
      this.kernels,
      ...dHeads,
      plan.dAttnOut,
      ...heads(a),
      plan.keyLengths,
      a.probs,
      { scale: this.d.scale, window: sliding ? this.d.window : null },
    );
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
    const { C, H, Hkv, D, I, eps } = d;
    const N = rows.length;
    const R = N * Tn;
    this.refreshNorms();
    const x = s.x.view([R, C]);
    const n = s.n.view([R, C]);
    const rstd = s.rstd.view([R]);
    const tables: RopeTables = {
      cosFull: s.cosFull.view([R, D / 2]),
      sinFull: s.sinFull.view([R, D / 2]),
      cosSliding: s.cosSliding.view([R, D / 2]),
      sinSliding: s.sinSliding.view([R, D / 2]),
    };
    const qLin = s.qLin.view([R, H * D]);
    const kLin = s.kLin.view([R, Hkv * D]);
    const vLin = s.vLin.view([R, Hkv * D]);
    const qn = s.qn.view([R, H * D]);
    const kn = s.kn.view([R, Hkv * D]);
    const qRot = s.qRot.view([N, Tn, H, D]);
    const kRot = s.kRot.view([N, Tn, Hkv, D]);
    const qh = s.qh.view([N, H, Tn, D]);
    const kh = s.kh.view([N, Hkv, Tn, D]);
    const vh = s.vh.view([N, Hkv, Tn, D]);
    const attnOut = s.attnOut.view([N, H, Tn, D]);
    const atty = s.atty.view([R, H * D]);
    const branch = s.branch.view([R, C]);
    const x2 = s.x2.view([R, C]);
    const gate = s.gate.view([R, I]);
    const up = s.up.view([R, I]);
    const h = s.h.view([R, I]);
    const heads = (t: Tensor, count: number) => (r: number) =>
      t.view([count, Tn, D], r * count * Tn * D);
    // RoPE tables per new token (position = the row's cached length + t), applied through
    // (1, R, heads, D) views so that every token is rotated by its own angle
    fillRopeTables(d, tables, s.positions.i32().subarray(0, R));
    k.upload(tables.cosFull, tables.sinFull, tables.cosSliding, tables.sinSliding);
    this.embed.lookup(k, x, s.ids.view([R]));
    k.scale(x, x, this.embedScale);
    for (let l = 0; l < d.L; l++) {
      const w = this.layerWeights[l];
      const [cos, sin] = w.sliding
        ? [tables.cosSliding, tables.sinSliding]
        : [tables.cosFull, tables.sinFull];
      // attention block
      k.rmsnorm(n, rstd, x, w.inputNorm.effective, eps);
      w.q.forward(k, qLin, n);
      w.k.forward(k, kLin, n);
      w.v.forward(k, vLin, n);
      const rstdQ = s.rstdHeads.view([R * H]);
      const rstdK = s.rstdHeads.view([R * Hkv]);
      k.rmsnorm(qn.view([R * H, D]), rstdQ, qLin.view([R * H, D]), w.qNorm.effective, eps);
      k.rmsnorm(kn.view([R * Hkv, D]), rstdK, kLin.view([R * Hkv, D]), w.kNorm.effective, eps);
      k.rope(qRot.view([1, R, H, D]), qn.view([1, R, H, D]), cos, sin);
      k.rope(kRot.view([1, R, Hkv, D]), kn.view([1, R, Hkv, D]), cos, sin);
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
        d.scale,
        w.sliding ? d.window : null,
      );
      k.permute0213(atty.view([N, Tn, H, D]), attnOut);
      w.o.forward(k, branch, atty);
      k.rmsnorm(n, rstd, branch, w.postAttnNorm.effective, eps);
      k.add(x2, x, n);
      // MLP block (the layer output overwrites x: its input is no longer needed)
      k.rmsnorm(n, rstd, x2, w.preFfNorm.effective, eps);
      w.gate.forward(k, gate, n);
      w.up.forward(k, up, n);
      k.gelu(h, gate, d.gelu);
      k.mul(h, h, up);
      w.down.forward(k, branch, h);
      k.rmsnorm(n, rstd, branch, w.postFfNorm.effective, eps);
      k.add(x, x2, n);
    }
    return x;
  }

  protected override headStep(s: Step, logits: Tensor, hidden: Tensor): void {
    const rows = logits.shape[0];
    const nf = s.nf.view([rows, this.d.C]);
    const eff = this.finalNorm.effective;
    this.kernels.rmsnorm(nf, s.rstdf.view([rows]), hidden, eff, this.d.eps);
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
    const R = B * T;
    const { H, Hkv, D } = d;
    const dx = plan.dx;
    const dn = plan.dn;
    const dEmbed = gradFor(paramGrads, "model.embed_tokens.weight", this.embed);
    const gradOf = (n: Norm) => gradFor(paramGrads, n.name, n.weight);
    // PyTorch autograd semantics (llama.ts): layer 0's input gradient is computed only when the
    // embedding gradient, layer 0's input-norm weight gradient or inputsEmbedsGrad needs it
    const needInputGrad =
      dEmbed !== null ||
      inputsEmbedsGrad !== null ||
      (d.L > 0 && gradOf(this.layerWeights[0].inputNorm) !== null);
    // the first writer of each gradient buffer overwrites it (no zeroing pass); later ones add
    const overwrite = { accumulate: false };
    k.rmsnormBackward(
      dx,
      gradOf(this.finalNorm),
      dn,
      plan.xFinal,
      this.finalNorm.effective,
      plan.rstdf,
      overwrite,
    );
    for (let l = d.L - 1; l >= 0; l--) {
      const w = this.layerWeights[l];
      const a = plan.layers[l];
      const [cos, sin] = w.sliding
        ? [plan.cosSliding, plan.sinSliding]
        : [plan.cosFull, plan.sinFull];
      // gradient checkpointing: refill the shared activations from the saved input (adapters
      // replay their dropout masks); the output is recomputed into a discarded buffer
      if (plan.discard !== null) this.layerForward(plan, l, plan.discard, true);
      // MLP block (dx holds d xOut; the residual passes it to d x2 unchanged)
      const dm = plan.dBranch;
      k.rmsnormBackward(
        dm,
        gradOf(w.postFfNorm),
        dx,
        a.m,
        w.postFfNorm.effective,
        a.rstdM,
        overwrite,
      );
      w.down.backward(k, plan.dH, dm, a.h, paramGrads, true);
      k.mul(plan.dAct, plan.dH, a.up); // d act = d h * up
      k.geluBackward(plan.dGate, a.gate, plan.dAct, d.gelu, overwrite);
      k.mul(plan.dUp, plan.dH, a.act); // d up = d h * act
      w.gate.backward(k, dn, plan.dGate, a.n2, paramGrads, true);
      w.up.backward(k, dn, plan.dUp, a.n2, paramGrads);
      k.rmsnormBackward(dx, gradOf(w.preFfNorm), dn, a.x2, w.preFfNorm.effective, a.rstd2);
      // attention block (dx now holds d x2; the residual passes it to d x)
      const dO = plan.dBranch;
      k.rmsnormBackward(
        dO,
        gradOf(w.postAttnNorm),
        dx,
        a.o,
        w.postAttnNorm.effective,
        a.rstdO,
        overwrite,
      );
      w.o.backward(k, plan.dAtty, dO, a.atty, paramGrads, true);
      k.permute0213(plan.dAttnOut, plan.dAtty.view([B, T, H, D])); // -> (B, H, T, D)
      this.attentionBackward(plan, a, w.sliding);
      k.permute0213(plan.dQRot, plan.dQh); // (B, H, T, D) -> (B, T, H, D)
      k.permute0213(plan.dKRot, plan.dKh);
      k.permute0213(plan.dVLin, plan.dVh);
      k.ropeBackward(plan.dQn.view([B, T, H, D]), plan.dQRot, cos, sin, overwrite);
      k.ropeBackward(plan.dKn.view([B, T, Hkv, D]), plan.dKRot, cos, sin, overwrite);
      k.rmsnormBackward(
        plan.dQLin.view([R * H, D]),
        gradOf(w.qNorm),
        plan.dQn.view([R * H, D]),
        a.qLin.view([R * H, D]),
        w.qNorm.effective,
        a.rstdQ,
        overwrite,
      );
      k.rmsnormBackward(
        plan.dKLin.view([R * Hkv, D]),
        gradOf(w.kNorm),
        plan.dKn.view([R * Hkv, D]),
        a.kLin.view([R * Hkv, D]),
        w.kNorm.effective,
        a.rstdK,
        overwrite,
      );
      const dn1 = l > 0 || needInputGrad ? dn : null; // d n1, or null: layer 0's input gradient is skipped
      w.q.backward(k, dn1, plan.dQLin, a.n1, paramGrads, true);
      w.k.backward(k, dn1, plan.dKLin, a.n1, paramGrads);
      w.v.backward(k, dn1, plan.dVLin.view([R, Hkv * D]), a.n1, paramGrads);
      if (dn1 !== null)
        k.rmsnormBackward(dx, gradOf(w.inputNorm), dn1, a.x, w.inputNorm.effective, a.rstd1);
    }
    // dx = d inputs_embeds (the scaled embedding) when needInputGrad (stale otherwise, and unread)
    if (inputsEmbedsGrad !== null) k.copy(inputsEmbedsGrad, dx);
    if (dEmbed !== null) {
      k.scale(dx, dx, this.embedScale);
      this.dropPaddingRows(dx, plan.ids);
      k.embeddingBackward(dEmbed, dx, plan.ids);
    }
  }

  /** Zeroes the rows of dRows (R, C) whose token is pad_token_id (nn.Embedding's padding_idx). */
  private dropPaddingRows(dRows: Tensor, ids: Tensor): void {
    const pad = this.d.padId;
    if (pad === null) return;
    const C = this.d.C;
    const tokens = ids.i32(); // batch data the host wrote
    for (let r = 0; r < tokens.length; r++)
      if (tokens[r] === pad) this.kernels.fill(dRows.view([C], r * C), 0);
  }
}

/** sqrt(hidden) as Gemma3TextScaledWordEmbedding applies it: rounded to the embedding's dtype. */
function embedScaleOf(C: number, checkpointDtype: string | undefined): number {
  const scale = Math.sqrt(C);
  if (checkpointDtype === "BF16") return bf16ToF32(f32ToBf16(scale));
  if (checkpointDtype === "F16") return f16ToF32(f32ToF16(scale));
  return Math.fround(scale);
}

/** Registry entry: builds a Gemma 3 text model from its config and checkpoint. */
export async function createGemma(
  config: Gemma3TextConfig,
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
      tokenEmbedding: "model.embed_tokens.weight",
      embeddings: ["model.embed_tokens.weight"],
      fanInFanOut: () => false,
    },
  );
  const embedDtype = checkpoint.entries.get("model.embed_tokens.weight")?.dtype;
  try {
    return new GemmaModel(config, d, params, kernels, embedScaleOf(d.C, embedDtype), quantized);
  } catch (err) {
    for (const p of params.values()) p.dispose();
    throw err;
  }
}
