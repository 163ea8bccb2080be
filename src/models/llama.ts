// The Llama family (model_type llama, qwen2, mistral, qwen3, smollm3, phi3): forward and backward
// written out explicitly (llm.c style, no autograd tape), side by side; backward is the forward
// read in reverse with d-prefixed names. Mirrors transformers' modeling_llama.py /
// modeling_qwen2.py / modeling_mistral.py / modeling_qwen3.py / modeling_smollm3.py /
// modeling_phi3.py:
//   x = embed(ids)
//   per layer: n1 = RMSNorm(x); q,k,v = n1 Wq^T (+bq), ...; [qwen3: q, k = RMSNorm per head
//              (q_norm, k_norm over D)]; RoPE(q, k) [smollm3: not on the layers no_rope_layers
//              marks 0; phi3: on the first rotary_dim = D * partial_rotary_factor values of each
//              head only]; GQA attention (head h uses kv head h // g, g = H / Hkv, HF's
//              repeat_kv); x2 = x + o_proj(attn);
//              n2 = RMSNorm(x2); x' = x2 + down(silu(gate(n2)) * up(n2))
//   logits = RMSNorm(x) W_lm^T   (W_lm = embedding when tie_word_embeddings)
// Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj (projections.ts); the math is the
// same. Biases: Qwen2 always has q/k/v biases; Llama, Qwen3 and SmolLM3 have q/k/v/o biases when
// attention_bias; Llama and SmolLM3 have gate/up/down biases when mlp_bias; Phi-3 has none.
// Positions are 0..T-1 for every row (HF's default position_ids); padding is right padding,
// masked on the key side (keyLengths), which is also what HF's eager mask does for pad queries,
// so logits agree at every position.
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
import { Projections } from "./projections.js";
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
  /** qwen3's per-head q_norm / k_norm. */
  qkNorm: boolean;
  /** Per layer: RoPE applied (smollm3 skips some). */
  ropeLayers: readonly boolean[];
  /** Leading values of each head that RoPE rotates (D except phi3's partial rotary). */
  rotaryDim: number;
  /** phi3's qkv_proj and gate_up_proj. */
  fused: boolean;
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
    qkNorm: config.qk_norm,
    ropeLayers: config.rope_layers,
    rotaryDim: Math.floor(D * config.partial_rotary_factor),
    fused: config.fused_projections,
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
    const qkv: [string, number][] = d.fused
      ? [["qkv_proj", (H + 2 * Hkv) * D]]
      : [
          ["q_proj", H * D],
          ["k_proj", Hkv * D],
          ["v_proj", Hkv * D],
        ];
    for (const [proj, out] of qkv) {
      specs.push({ name: `${p}.self_attn.${proj}.weight`, shape: [out, C] });
      if (d.qkvBias) specs.push({ name: `${p}.self_attn.${proj}.bias`, shape: [out] });
    }
    if (d.qkNorm) {
      specs.push({ name: `${p}.self_attn.q_norm.weight`, shape: [D] });
      specs.push({ name: `${p}.self_attn.k_norm.weight`, shape: [D] });
    }
    specs.push({ name: `${p}.self_attn.o_proj.weight`, shape: [C, H * D] });
    if (d.oBias) specs.push({ name: `${p}.self_attn.o_proj.bias`, shape: [C] });
    specs.push({ name: `${p}.post_attention_layernorm.weight`, shape: [C] });
    const mlp: [string, [number, number]][] = d.fused
      ? [
          ["gate_up_proj", [2 * I, C]],
          ["down_proj", [C, I]],
        ]
      : [
          ["gate_proj", [I, C]],
          ["up_proj", [I, C]],
          ["down_proj", [C, I]],
        ];
    for (const [proj, shape] of mlp) {
      specs.push({ name: `${p}.mlp.${proj}.weight`, shape });
      if (d.mlpBias) specs.push({ name: `${p}.mlp.${proj}.bias`, shape: [shape[0]] });
    }
  }
  specs.push({ name: "model.norm.weight", shape: [C] });
  if (!d.tied) specs.push({ name: "lm_head.weight", shape: [V, C] });
  return specs;
}

/** qwen3's per-head RMSNorm weights (D each) of one layer. */
interface QkNorm {
  q: Tensor; // (D)
  k: Tensor; // (D)
  qName: string;
  kName: string;
}

interface LayerWeights {
  inputNorm: Tensor; // (C)
  postNorm: Tensor; // (C)
  inputNormName: string;
  postNormName: string;
  qkv: Projections; // parts q (H*D), k (Hkv*D), v (Hkv*D)
  qkNorm: QkNorm | null;
  o: LinearLayer;
  gateUp: Projections; // parts gate (I), up (I)
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
  // qwen3 (null otherwise): the q/k projections before q_norm / k_norm, and their statistics
  qPre: Tensor | null; // (R, H*D)
  kPre: Tensor | null; // (R, Hkv*D)
  rstdQ: Tensor | null; // (R*H)
  rstdK: Tensor | null; // (R*Hkv)
  qh: Tensor; // (B, H, T, D) roped queries
  kh: Tensor; // (B, Hkv, T, D) roped keys
  vh: Tensor; // (B, Hkv, T, D)
  probs: Tensor | null; // (B, H, T, T) under "full" attention (attention.ts), else null
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
  readonly attention: AttentionPlan; // attention's scratch (and its saved state per layer)
  readonly discard: Tensor | null; // (R, C) a recomputed layer's output (checkpointing only)
  readonly xFinal: Tensor; // (R, C)
  readonly rstdf: Tensor; // (R)
  readonly cos: Tensor; // (T, rotaryDim/2)
  readonly sin: Tensor; // (T, rotaryDim/2)
  // forward scratch (fused and rope: also backward scratch)
  readonly fused: Tensor | null; // (R * max((H + 2 Hkv) D, 2 I)) phi3's fused outputs and grads
  readonly rope: RopeScratch | null; // partial RoPE only
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
    const tIf = (on: boolean, shape: number[]): Tensor | null => (on ? t(shape) : null);
    try {
      const { attention, attentionTile } = layout;
      this.attention = new AttentionPlan(t, { B, T, H, Hkv, D }, attention, attentionTile);
      const acts = (): Omit<LayerActs, "x"> => ({
        n1: t([R, C]),
        rstd1: t([R]),
        qPre: tIf(d.qkNorm, [R, H * D]),
        kPre: tIf(d.qkNorm, [R, Hkv * D]),
        rstdQ: tIf(d.qkNorm, [R * H]),
        rstdK: tIf(d.qkNorm, [R * Hkv]),
        qh: t([B, H, T, D]),
        kh: t([B, Hkv, T, D]),
        vh: t([B, Hkv, T, D]),
        probs: this.attention.savedBuffer(),
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
      this.cos = t([T, d.rotaryDim / 2]);
      this.sin = t([T, d.rotaryDim / 2]);
      this.fused = tIf(d.fused, [R * Math.max((H + 2 * Hkv) * D, 2 * I)]);
      this.rope = d.rotaryDim < D ? ropeScratch(t, R * H * d.rotaryDim) : null;
      this.qLin = t([R, H * D]);
      this.kLin = t([R, Hkv * D]);
      this.vLin = t([R, Hkv * D]);
      this.qRot = t([B, T, H, D]);
      this.kRot = t([B, T, Hkv, D]);
      this.attnOut = t([B, H, T, D]);
      this.dx = t([R, C]);
      this.dAtty = t([R, H * D]);
      this.dAttnOut = t([B, H, T, D]);
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
    const tables = ropeTables(d.rotaryDim, positions, { theta: d.ropeTheta, ...scaling });
    this.cos.f32().set(tables.cos);
    this.sin.f32().set(tables.sin);
  }
}

/** Scratch of a cached step: one layer's activations (reused by every layer), no backward. */
class Step extends StepScratch {
  readonly x: Tensor; // (tokens, C) residual stream
  readonly n: Tensor; // (tokens, C)
  readonly rstd: Tensor; // (tokens)
  readonly cos: Tensor; // (tokens, rotaryDim/2) at each new token's position
  readonly sin: Tensor; // (tokens, rotaryDim/2)
  readonly fused: Tensor | null; // (tokens * max((H + 2 Hkv) D, 2 I)) phi3 only
  readonly rope: RopeScratch | null; // partial RoPE only
  readonly qPre: Tensor | null; // (tokens, H*D) qwen3 only
  readonly kPre: Tensor | null; // (tokens, Hkv*D) qwen3 only
  readonly rstdQ: Tensor | null; // (tokens*H) qwen3 only
  readonly rstdK: Tensor | null; // (tokens*Hkv) qwen3 only
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
    const tIf = (on: boolean, shape: number[]): Tensor | null => (on ? t(shape) : null);
    try {
      this.x = t([R, C]);
      this.n = t([R, C]);
      this.rstd = t([R]);
      this.cos = t([R, d.rotaryDim / 2]);
      this.sin = t([R, d.rotaryDim / 2]);
      this.fused = tIf(d.fused, [R * Math.max((H + 2 * Hkv) * D, 2 * I)]);
      this.rope = d.rotaryDim < D ? ropeScratch(t, R * H * d.rotaryDim) : null;
      this.qPre = tIf(d.qkNorm, [R, H * D]);
      this.kPre = tIf(d.qkNorm, [R, Hkv * D]);
      this.rstdQ = tIf(d.qkNorm, [R * H]);
      this.rstdK = tIf(d.qkNorm, [R * Hkv]);
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

/** Partial RoPE's scratch: the leading rotaryDim values of every head, gathered, and rotated. */
interface RopeScratch {
  part: Tensor; // (rows * heads * rotaryDim) capacity
  rotated: Tensor; // same
}

function ropeScratch(t: (shape: number[]) => Tensor, size: number): RopeScratch {
  return { part: t([size]), rotated: t([size]) };
}

/** Where one layer's q, k, v go on their way to attention (rows = b * t tokens). */
interface QkvBuffers {
  qLin: Tensor; // (rows, H*D) projection output, or (qwen3) the q_norm output
  kLin: Tensor; // (rows, Hkv*D)
  vLin: Tensor; // (rows, Hkv*D)
  qRot: Tensor; // (rows, H*D) roped
  kRot: Tensor; // (rows, Hkv*D)
  qPre: Tensor | null; // (rows, H*D) qwen3: projection output before q_norm
  kPre: Tensor | null; // (rows, Hkv*D)
  rstdQ: Tensor | null; // (rows*H) qwen3: q_norm statistics
  rstdK: Tensor | null; // (rows*Hkv)
  fused: Tensor | null; // phi3's fused output scratch
  rope: RopeScratch | null; // partial RoPE scratch
}

/**
 * RoPE on inp (b, t, heads, D) into out: the whole head, or with partial rotary (rotaryDim < D) the
 * leading rotaryDim values of each head while the rest pass unchanged (modeling_phi3.py's
 * apply_rotary_pos_emb: cat(rotate(x[..., :rotary_dim]), x[..., rotary_dim:])).
 * cos, sin: (t, rotaryDim/2).
 */
function applyRope(
  k: Kernels,
  out: Tensor,
  inp: Tensor,
  cos: Tensor,
  sin: Tensor,
  shape: readonly [number, number, number],
  D: number,
  scratch: RopeScratch | null,
): void {
  if (scratch === null) {
    k.rope(out.view([...shape, D]), inp.view([...shape, D]), cos, sin);
    return;
  }
  const rows = shape[0] * shape[1] * shape[2];
  const rd = cos.shape[1] * 2;
  const part = scratch.part.view([rows, rd]);
  const rotated = scratch.rotated.view([rows, rd]);
  k.copyColumns(part, 0, inp.view([rows, D]), 0, rd);
  k.rope(rotated.view([...shape, rd]), part.view([...shape, rd]), cos, sin);
  k.copy(out.view([rows, D]), inp.view([rows, D]));
  k.copyColumns(out.view([rows, D]), 0, rotated, 0, rd);
}

/** applyRope's backward: dInp = R(-theta) dOut on the rotated values, dOut elsewhere. */
function applyRopeBackward(
  k: Kernels,
  dInp: Tensor,
  dOut: Tensor,
  cos: Tensor,
  sin: Tensor,
  shape: readonly [number, number, number],
  D: number,
  scratch: RopeScratch | null,
): void {
  const overwrite = { accumulate: false };
  if (scratch === null) {
    k.ropeBackward(dInp.view([...shape, D]), dOut.view([...shape, D]), cos, sin, overwrite);
    return;
  }
  const rows = shape[0] * shape[1] * shape[2];
  const rd = cos.shape[1] * 2;
  const part = scratch.part.view([rows, rd]);
  const rotated = scratch.rotated.view([rows, rd]);
  k.copyColumns(part, 0, dOut.view([rows, D]), 0, rd);
  k.ropeBackward(rotated.view([...shape, rd]), part.view([...shape, rd]), cos, sin, overwrite);
  k.copy(dInp.view([rows, D]), dOut.view([rows, D]));
  k.copyColumns(dInp.view([rows, D]), 0, rotated, 0, rd);
}

function cacheDimsOf(d: Dims): CacheDims {
  return { layers: d.L, heads: d.H, kvHeads: d.Hkv, headDim: d.D, hidden: d.C, vocab: d.V };
}

/** A layer's roped queries, keys and values as attention.ts' Heads. */
function heads(a: LayerActs): [Heads, Heads, Heads] {
  return [{ tensor: a.qh }, { tensor: a.kh }, { tensor: a.vh }];
}

class LlamaModel extends DecoderModel<LlamaFamilyConfig, Plan, Step> {
  private readonly d: Dims;
  private readonly embed: EmbeddingTable; // (V, C), on the heap or off it
  private readonly finalNorm: Tensor; // (C)
  private readonly layerWeights: LayerWeights[] = [];
  private readonly lmHead: LinearLayer;
  /** longrope: caches holding keys rotated with the short factors (see forwardStep). */
  private readonly shortRopeCaches = new WeakSet<DecoderKvCache<Step>>();

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
    this.embed = this.embeddingTable("model.embed_tokens.weight", quantized);
    const { C, H, Hkv, D, I, V } = d;
    for (let l = 0; l < d.L; l++) {
      const p = `model.layers.${l}`;
      const attn = `${p}.self_attn`;
      const qkvWidths = [H * D, Hkv * D, Hkv * D];
      const qkv = d.fused
        ? [linear(`${attn}.qkv_proj`, C, (H + 2 * Hkv) * D, d.qkvBias)]
        : [
            linear(`${attn}.q_proj`, C, H * D, d.qkvBias),
            linear(`${attn}.k_proj`, C, Hkv * D, d.qkvBias),
            linear(`${attn}.v_proj`, C, Hkv * D, d.qkvBias),
          ];
      const o = linear(`${attn}.o_proj`, H * D, C, d.oBias);
      const gateUp = d.fused
        ? [linear(`${p}.mlp.gate_up_proj`, C, 2 * I, d.mlpBias)]
        : [
            linear(`${p}.mlp.gate_proj`, C, I, d.mlpBias),
            linear(`${p}.mlp.up_proj`, C, I, d.mlpBias),
          ];
      this.layerWeights.push({
        inputNormName: `${p}.input_layernorm.weight`,
        postNormName: `${p}.post_attention_layernorm.weight`,
        inputNorm: this.param(`${p}.input_layernorm.weight`),
        postNorm: this.param(`${p}.post_attention_layernorm.weight`),
        qkv: new Projections(qkv, qkvWidths),
        qkNorm: d.qkNorm
          ? {
              q: this.param(`${attn}.q_norm.weight`),
              k: this.param(`${attn}.k_norm.weight`),
              qName: `${attn}.q_norm.weight`,
              kName: `${attn}.k_norm.weight`,
            }
          : null,
        o,
        gateUp: new Projections(gateUp, [I, I]),
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
    this.embed.lookup(k, plan.layers.length > 0 ? plan.layers[0].x : plan.xFinal, plan.ids);
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
    const scale = 1 / Math.sqrt(d.D); // HF: self.scaling = head_dim ** -0.5
    const w = this.layerWeights[l];
    const a = plan.layers[l];
    // attention block
    k.rmsnorm(a.n1, a.rstd1, a.x, w.inputNorm, d.eps);
    const buf: QkvBuffers = {
      qLin: plan.qLin,
      kLin: plan.kLin,
      vLin: plan.vLin,
      qRot: plan.qRot,
      kRot: plan.kRot,
      qPre: a.qPre,
      kPre: a.kPre,
      rstdQ: a.rstdQ,
      rstdK: a.rstdK,
      fused: plan.fused,
      rope: plan.rope,
    };
    const qk = this.qkvForward(l, a.n1, buf, B, T, plan.cos, plan.sin, recompute);
    k.permute0213(a.qh, qk.q.view([B, T, d.H, d.D])); // (B, T, H, D) -> (B, H, T, D)
    k.permute0213(a.kh, qk.k.view([B, T, d.Hkv, d.D]));
    k.permute0213(a.vh, plan.vLin.view([B, T, d.Hkv, d.D]));
    plan.attention.forward(k, plan.attnOut, ...heads(a), plan.keyLengths, a.probs, { scale });
    k.permute0213(a.atty.view([B, T, d.H, d.D]), plan.attnOut);
    w.o.forward(k, a.x2, a.atty, recompute);
    k.add(a.x2, a.x2, a.x);
    // MLP block
    k.rmsnorm(a.n2, a.rstd2, a.x2, w.postNorm, d.eps);
    w.gateUp.forward(k, [a.gate, a.up], a.n2, plan.fused, recompute);
    k.swiglu(a.h, a.gate, a.up);
    w.down.forward(k, xOut, a.h, recompute);
    k.add(xOut, xOut, a.x2);
  }

  /**
   * Layer l's q, k, v from n (b*t, C): projections into b.qLin|qPre, kLin|kPre, vLin; qwen3's
   * per-head norms; RoPE unless the layer skips it. Returns the tensors holding the final q
   * (b*t, H*D) and k (b*t, Hkv*D); v stays in b.vLin.
   */
  private qkvForward(
    l: number,
    n: Tensor,
    buf: QkvBuffers,
    bs: number,
    ts: number,
    cos: Tensor,
    sin: Tensor,
    recompute = false,
  ): { q: Tensor; k: Tensor } {
    const k = this.kernels;
    const d = this.d;
    const { H, Hkv, D } = d;
    const rows = bs * ts;
    const w = this.layerWeights[l];
    let q = buf.qPre ?? buf.qLin;
    let key = buf.kPre ?? buf.kLin;
    w.qkv.forward(k, [q, key, buf.vLin], n, buf.fused, recompute);
    if (w.qkNorm !== null && buf.rstdQ !== null && buf.rstdK !== null) {
      // Qwen3RMSNorm over the last axis of q.view(..., heads, D): rows of D values
      k.rmsnorm(buf.qLin.view([rows * H, D]), buf.rstdQ, q.view([rows * H, D]), w.qkNorm.q, d.eps);
      k.rmsnorm(
        buf.kLin.view([rows * Hkv, D]),
        buf.rstdK,
        key.view([rows * Hkv, D]),
        w.qkNorm.k,
        d.eps,
      );
      q = buf.qLin;
      key = buf.kLin;
    }
    if (d.ropeLayers[l]) {
      applyRope(k, buf.qRot, q, cos, sin, [bs, ts, H], D, buf.rope);
      applyRope(k, buf.kRot, key, cos, sin, [bs, ts, Hkv], D, buf.rope);
      q = buf.qRot;
      key = buf.kRot;
    }
    return { q, k: key };
  }

  /**
   * qkvForward's backward from d q, d k (B, T, heads, D) in plan.dQRot, plan.dKRot: back through
   * RoPE and the qk norms (the two buffers of each take turns). Returns the gradients of the
   * projections' q and k outputs, (R, H*D) and (R, Hkv*D).
   */
  private qkBackward(
    l: number,
    plan: Plan,
    paramGrads: ReadonlyMap<string, Tensor> | undefined,
  ): { dq: Tensor; dk: Tensor } {
    const k = this.kernels;
    const d = this.d;
    const { B, T } = plan;
    const { H, Hkv, D } = d;
    const R = B * T;
    const w = this.layerWeights[l];
    const a = plan.layers[l];
    const overwrite = { accumulate: false };
    let dq = plan.dQRot;
    let dk = plan.dKRot;
    let spareQ = plan.dQLin;
    let spareK = plan.dKLin;
    if (d.ropeLayers[l]) {
      applyRopeBackward(k, spareQ, dq, plan.cos, plan.sin, [B, T, H], D, plan.rope);
      applyRopeBackward(k, spareK, dk, plan.cos, plan.sin, [B, T, Hkv], D, plan.rope);
      [dq, spareQ] = [spareQ, dq];
      [dk, spareK] = [spareK, dk];
    }
    if (w.qkNorm !== null && a.qPre !== null && a.kPre !== null) {
      const norm = w.qkNorm;
      k.rmsnormBackward(
        spareQ.view([R * H, D]),
        gradFor(paramGrads, norm.qName, norm.q),
        dq.view([R * H, D]),
        a.qPre.view([R * H, D]),
        norm.q,
        a.rstdQ as Tensor,
        overwrite,
      );
      k.rmsnormBackward(
        spareK.view([R * Hkv, D]),
        gradFor(paramGrads, norm.kName, norm.k),
        dk.view([R * Hkv, D]),
        a.kPre.view([R * Hkv, D]),
        norm.k,
        a.rstdK as Tensor,
        overwrite,
      );
      [dq, spareQ] = [spareQ, dq];
      [dk, spareK] = [spareK, dk];
    }
    return { dq: dq.view([R, H * D]), dk: dk.view([R, Hkv * D]) };
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
    const cos = s.cos.view([R, d.rotaryDim / 2]);
    const sin = s.sin.view([R, d.rotaryDim / 2]);
    const qLin = s.qLin.view([R, H * D]);
    const kLin = s.kLin.view([R, Hkv * D]);
    const vLin = s.vLin.view([R, Hkv * D]);
    const qRot = s.qRot.view([R, H * D]);
    const kRot = s.kRot.view([R, Hkv * D]);
    const buf: QkvBuffers = {
      qLin,
      kLin,
      vLin,
      qRot,
      kRot,
      qPre: s.qPre?.view([R, H * D]) ?? null,
      kPre: s.kPre?.view([R, Hkv * D]) ?? null,
      rstdQ: s.rstdQ?.view([R * H]) ?? null,
      rstdK: s.rstdK?.view([R * Hkv]) ?? null,
      fused: s.fused,
      rope: s.rope,
    };
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
    const positions = s.positions.i32().subarray(0, R);
    this.checkLongRopeSwitch(cache, positions);
    const tables = ropeTables(d.rotaryDim, positions, { theta: d.ropeTheta, ...scaling });
    cos.f32().set(tables.cos);
    sin.f32().set(tables.sin);
    k.upload(cos, sin);
    this.embed.lookup(k, x, s.ids.view([R]));
    for (let l = 0; l < d.L; l++) {
      const w = this.layerWeights[l];
      // attention block
      k.rmsnorm(n, rstd, x, w.inputNorm, d.eps);
      const qk = this.qkvForward(l, n, buf, 1, R, cos, sin);
      k.permute0213(qh, qk.q.view([N, Tn, H, D])); // (N, Tn, H, D) -> (N, H, Tn, D)
      k.permute0213(kh, qk.k.view([N, Tn, Hkv, D]));
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
      w.gateUp.forward(k, [gate, up], n, s.fused);
      k.swiglu(h, gate, up);
      w.down.forward(k, x, h);
      k.add(x, x, x2);
    }
    return x;
  }

  /**
   * LongRoPE picks its factors per call from the largest position (long past
   * original_max_position_embeddings). A cache whose keys got the short factors cannot take a
   * step past that length: transformers then drops the cache and recomputes every key with the
   * long factors (Phi3ForCausalLM.prepare_inputs_for_generation); here that is an error.
   */
  private checkLongRopeSwitch(cache: DecoderKvCache<Step>, positions: Int32Array): void {
    const rope = this.d.ropeScaling;
    if (rope?.type !== "longrope") return;
    let seqLen = 0;
    for (const p of positions) seqLen = Math.max(seqLen, p + 1);
    if (seqLen <= rope.originalMaxPositionEmbeddings) this.shortRopeCaches.add(cache);
    else if (this.shortRopeCaches.has(cache)) {
      throw new Error(
        `${this.modelType}: cached generation past original_max_position_embeddings (${rope.originalMaxPositionEmbeddings}) after a shorter start switches LongRoPE to its long factors; the cached keys would need recomputing, which is not supported (start with a prompt longer than ${rope.originalMaxPositionEmbeddings} tokens, or stay within it)`,
      );
    }
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
      w.gateUp.backward(k, dn, [plan.dGate, plan.dUp], a.n2, paramGrads, plan.fused);
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
      const dHeads = [{ tensor: plan.dQh }, { tensor: plan.dKh }, { tensor: plan.dVh }] as const;
      const dOut = plan.dAttnOut;
      plan.attention.backward(k, ...dHeads, dOut, ...heads(a), plan.keyLengths, a.probs, { scale });
      k.permute0213(plan.dQRot, plan.dQh); // (B, H, T, D) -> (B, T, H, D)
      k.permute0213(plan.dKRot, plan.dKh);
      k.permute0213(plan.dVLin, plan.dVh);
      const { dq, dk } = this.qkBackward(l, plan, paramGrads);
      const dn1 = l > 0 || needInputGrad ? dn : null; // d n1, or null: layer 0's input gradient is skipped
      const dv = plan.dVLin.view([B * T, d.Hkv * d.D]);
      w.qkv.backward(k, dn1, [dq, dk, dv], a.n1, paramGrads, plan.fused);
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
      tokenEmbedding: "model.embed_tokens.weight",
      embeddings: ["model.embed_tokens.weight"],
      fanInFanOut: () => false,
    },
  );
  return new LlamaModel(config, d, params, kernels, quantized);
}
