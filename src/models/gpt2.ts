// GPT-2 (model_type gpt2): forward and backward written out explicitly, side by side; backward is
// the forward read in reverse with d-prefixed names. Mirrors transformers' modeling_gpt2.py:
//   x = wte(ids) + wpe(0..T-1)
//   per layer: n1 = LayerNorm(x); q|k|v = n1 Wattn + b (Conv1D, weight stored (in, out));
//              causal attention scaled by D^-0.5 (and 1/(layer+1) with
//              scale_attn_by_inverse_layer_idx); x2 = x + c_proj(attn);
//              n2 = LayerNorm(x2); x' = x2 + c_proj(gelu_new(c_fc(n2)))
//   logits = LayerNorm_f(x) wte^T   (lm_head tied to wte)
// Padding is right padding masked on the key side (keyLengths), as HF's eager mask does, so the
// logits agree at every position. The CausalLM plumbing (activation plan per (B, T), loss,
// adapters, weight storage) is decoder-base.ts'. Gradient checkpointing (plan layout): layers
// keep only their input x and share one set of activations; backward calls layerForward again
// (recompute) before each layer. Cached decoding (forwardStep): the same layer with wpe at each
// new token's own position (the row's cached length + t) and attention against the row's cached
// keys (kv-cache.ts).
// Legend: B batch, T time, C n_embd, H heads, D = C / H, F inner (4C), V vocab, P positions,
// R = B*T rows, L layers. Conv1D linears are reported with fanInFanOut = true (PEFT's flag).

import type { Gpt2Config } from "../io/hf-config.js";
import type { BackwardOptions, GeluApproximate, Kernels } from "../kernels/kernels.js";
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
import type { WeightLoadOptions } from "./weights.js";

/** transformers' ACT2FN names -> the GELU variant (gelu_new, gelu_fast and gelu_pytorch_tanh are the tanh form). */
const GELU_OF: { [name: string]: GeluApproximate } = {
  gelu: "none",
  gelu_new: "tanh",
  gelu_fast: "tanh",
  gelu_pytorch_tanh: "tanh",
};

interface Dims {
  L: number;
  C: number;
  H: number;
  D: number;
  F: number;
  V: number;
  P: number;
  eps: number;
  gelu: GeluApproximate;
  tied: boolean;
  scaleWeights: boolean;
  scaleByLayer: boolean;
}

function dimsOf(config: Gpt2Config): Dims {
  const D = config.n_embd / config.n_head;
  if (!Number.isInteger(D))
    throw new Error(`gpt2: n_embd ${config.n_embd} is not a multiple of n_head ${config.n_head}`);
  const act = config.activation_function;
  const gelu = Object.hasOwn(GELU_OF, act) ? GELU_OF[act] : undefined;
  if (gelu === undefined) {
    throw new Error(
      `gpt2: activation_function "${act}" is not supported (supported: ${Object.keys(GELU_OF).join(", ")})`,
    );
  }
  return {
    L: config.n_layer,
    C: config.n_embd,
    H: config.n_head,
    D,
    F: config.n_inner,
    V: config.vocab_size,
    P: config.n_positions,
    eps: config.layer_norm_epsilon,
    gelu,
    tied: config.tie_word_embeddings,
    scaleWeights: config.scale_attn_weights,
    scaleByLayer: config.scale_attn_by_inverse_layer_idx,
  };
}

function paramSpecs(d: Dims, checkpoint: CheckpointSource): ParamSpec[] {
  const { C, F, V, P } = d;
  // openai-community/gpt2 stores GPT2Model's names without the "transformer." prefix
  const bare =
    !checkpoint.entries.has("transformer.wte.weight") && checkpoint.entries.has("wte.weight");
  const spec = (name: string, shape: number[]): ParamSpec =>
    bare && name.startsWith("transformer.")
      ? { name, shape, stored: name.slice("transformer.".length) }
      : { name, shape };
  const specs: ParamSpec[] = [
    spec("transformer.wte.weight", [V, C]),
    spec("transformer.wpe.weight", [P, C]),
  ];
  for (let l = 0; l < d.L; l++) {
    const p = `transformer.h.${l}`;
    specs.push(spec(`${p}.ln_1.weight`, [C]), spec(`${p}.ln_1.bias`, [C]));
    specs.push(spec(`${p}.attn.c_attn.weight`, [C, 3 * C]), spec(`${p}.attn.c_attn.bias`, [3 * C]));
    specs.push(spec(`${p}.attn.c_proj.weight`, [C, C]), spec(`${p}.attn.c_proj.bias`, [C]));
    specs.push(spec(`${p}.ln_2.weight`, [C]), spec(`${p}.ln_2.bias`, [C]));
    specs.push(spec(`${p}.mlp.c_fc.weight`, [C, F]), spec(`${p}.mlp.c_fc.bias`, [F]));
    specs.push(spec(`${p}.mlp.c_proj.weight`, [F, C]), spec(`${p}.mlp.c_proj.bias`, [C]));
  }
  specs.push(spec("transformer.ln_f.weight", [C]), spec("transformer.ln_f.bias", [C]));
  if (!d.tied) specs.push({ name: "lm_head.weight", shape: [V, C] });
  return specs;
}

interface Norm {
  weight: Tensor; // (C)
  bias: Tensor; // (C)
  weightName: string;
  biasName: string;
}

interface LayerWeights {
  ln1: Norm;
  ln2: Norm;
  attn: LinearLayer; // c_attn (C, 3C)
  proj: LinearLayer; // attn.c_proj (C, C)
  fc: LinearLayer; // mlp.c_fc (C, F)
  fcProj: LinearLayer; // mlp.c_proj (F, C)
}

/**
 * Saved activations of one layer (what backward reads). Under gradient checkpointing only x is the
 * layer's own; the rest is one set shared by every layer, refilled by recomputing the layer's
 * forward right before its backward.
 */
interface LayerActs {
  x: Tensor; // (R, C) layer input
  n1: Tensor; // (R, C)
  mean1: Tensor; // (R)
  rstd1: Tensor; // (R)
  qkvh: Tensor; // (B, 3H, T, D) = per batch row: Q (H, T, D), K (H, T, D), V (H, T, D)
  probs: Tensor | null; // (B, H, T, T) under "full" attention (attention.ts), else null
  atty: Tensor; // (R, C) = (B, T, H, D) attention output, c_proj input
  x2: Tensor; // (R, C)
  n2: Tensor; // (R, C)
  mean2: Tensor; // (R)
  rstd2: Tensor; // (R)
  fc: Tensor; // (R, F) c_fc output (gelu input)
  h: Tensor; // (R, F) gelu output (mlp.c_proj input)
}

/** GPT-2's activations and scratch for one (B, T), on top of the boundary buffers. */
class Plan extends DecoderPlan {
  readonly layers: LayerActs[] = [];
  readonly attention: AttentionPlan; // attention's scratch (and its saved state per layer)
  readonly discard: Tensor | null; // (R, C) a recomputed layer's output (checkpointing only)
  readonly xFinal: Tensor; // (R, C)
  readonly meanf: Tensor; // (R)
  readonly rstdf: Tensor; // (R)
  readonly positions: Tensor; // (R) i32, t for row (b, t)
  readonly posEmb: Tensor; // (R, C)
  readonly qkv: Tensor; // (R, 3C)
  readonly attnOut: Tensor; // (B, H, T, D)
  readonly dx: Tensor; // (R, C)
  readonly dAtty: Tensor; // (R, C)
  readonly dAttnOut: Tensor; // (B, H, T, D)
  readonly dQkvh: Tensor; // (B, 3H, T, D)
  readonly dQkv: Tensor; // (R, 3C)
  readonly dH: Tensor; // (R, F)
  readonly dFc: Tensor; // (R, F)

  constructor(kernels: Kernels, d: Dims, B: number, T: number, layout: PlanLayout) {
    super(kernels.heap, B, T, d.V, d.C, layout);
    const R = B * T;
    const { C, H, D, F } = d;
    const t = (shape: number[], dtype?: "f32" | "i32"): Tensor => this.tensor(shape, dtype);
    try {
      const { attention, attentionTile } = layout;
      this.attention = new AttentionPlan(t, { B, T, H, Hkv: H, D }, attention, attentionTile);
      const acts = (): Omit<LayerActs, "x"> => ({
        n1: t([R, C]),
        mean1: t([R]),
        rstd1: t([R]),
        qkvh: t([B, 3 * H, T, D]),
        probs: this.attention.savedBuffer(),
        atty: t([R, C]),
        x2: t([R, C]),
        n2: t([R, C]),
        mean2: t([R]),
        rstd2: t([R]),
        fc: t([R, F]),
        h: t([R, F]),
      });
      const shared = layout.checkpointing ? acts() : null;
      for (let l = 0; l < d.L; l++) this.layers.push({ ...(shared ?? acts()), x: t([R, C]) });
      this.discard = layout.checkpointing ? t([R, C]) : null;
      this.xFinal = t([R, C]);
      this.meanf = t([R]);
      this.rstdf = t([R]);
      this.positions = t([R], "i32");
      this.posEmb = t([R, C]);
      this.qkv = t([R, 3 * C]);
      this.attnOut = t([B, H, T, D]);
      this.dx = t([R, C]);
      this.dAtty = t([R, C]);
      this.dAttnOut = t([B, H, T, D]);
      this.dQkvh = t([B, 3 * H, T, D]);
      this.dQkv = t([R, 3 * C]);
      this.dH = t([R, F]);
      this.dFc = t([R, F]);
    } catch (err) {
      this.dispose();
      throw err;
    }
    // HF's default position_ids: 0..T-1 for every row
    const positions = this.positions.i32();
    for (let i = 0; i < R; i++) positions[i] = i % T;
  }
}

/** Scratch of a cached step: one layer's activations (reused by every layer), no backward. */
class Step extends StepScratch {
  readonly x: Tensor; // (tokens, C) residual stream
  readonly posEmb: Tensor; // (tokens, C)
  readonly n: Tensor; // (tokens, C)
  readonly mean: Tensor; // (tokens)
  readonly rstd: Tensor; // (tokens)
  readonly qkv: Tensor; // (tokens, 3C)
  readonly qkvh: Tensor; // (N, 3H, Tn, D)
  readonly attnOut: Tensor; // (N, H, Tn, D)
  readonly atty: Tensor; // (tokens, C)
  readonly x2: Tensor; // (tokens, C)
  readonly fc: Tensor; // (tokens, F)
  readonly h: Tensor; // (tokens, F)
  readonly nf: Tensor; // (max(tokens, logitRows), C)
  readonly meanf: Tensor; // (max(tokens, logitRows))
  readonly rstdf: Tensor; // (max(tokens, logitRows))

  constructor(kernels: Kernels, d: Dims, capacity: StepCapacity, maxLength: number) {
    super(kernels.heap, cacheDimsOf(d), capacity, maxLength);
    const R = capacity.tokens;
    const { C, F } = d;
    const t = (shape: number[]): Tensor => this.tensor(shape);
    try {
      this.x = t([R, C]);
      this.posEmb = t([R, C]);
      this.n = t([R, C]);
      this.mean = t([R]);
      this.rstd = t([R]);
      this.qkv = t([R, 3 * C]);
      this.qkvh = t([R * 3 * C]);
      this.attnOut = t([R * C]);
      this.atty = t([R, C]);
      this.x2 = t([R, C]);
      this.fc = t([R, F]);
      this.h = t([R, F]);
      const heads = Math.max(R, capacity.logitRows);
      this.nf = t([heads, C]);
      this.meanf = t([heads]);
      this.rstdf = t([heads]);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }
}

function cacheDimsOf(d: Dims): CacheDims {
  return { layers: d.L, heads: d.H, kvHeads: d.H, headDim: d.D, hidden: d.C, vocab: d.V };
}

/** Q, K and V (H heads each) of a (B, 3H, T, D) tensor as attention.ts' Heads. */
function qkvHeads(d: Dims, qkvh: Tensor): [Heads, Heads, Heads] {
  return [
    { tensor: qkvh, first: 0 },
    { tensor: qkvh, first: d.H },
    { tensor: qkvh, first: 2 * d.H },
  ];
}

class Gpt2Model extends DecoderModel<Gpt2Config, Plan, Step> {
  private readonly d: Dims;
  private readonly wte: EmbeddingTable; // (V, C), on the heap or off it
  private readonly wpe: Tensor; // (P, C)
  private readonly lnf: Norm;
  private readonly layerWeights: LayerWeights[] = [];
  private readonly lmHead: LinearLayer;

  constructor(
    config: Gpt2Config,
    d: Dims,
    params: Map<string, Tensor>,
    kernels: Kernels,
    quantized: ReadonlyMap<string, QuantizedWeight> = new Map(),
  ) {
    super(config, params, kernels, { vocabSize: d.V, hiddenSize: d.C, maxPositions: d.P });
    this.d = d;
    const linear = this.linearFactory(params, quantized);
    const norm = (path: string): Norm => ({
      weight: this.param(`${path}.weight`),
      bias: this.param(`${path}.bias`),
      weightName: `${path}.weight`,
      biasName: `${path}.bias`,
    });
    // Conv1D: weight stored (in, out), always with a bias
    const conv1d = (path: string, inF: number, outF: number): LinearLayer =>
      linear({
        path,
        inFeatures: inF,
        outFeatures: outF,
        weightName: `${path}.weight`,
        biasName: `${path}.bias`,
        fanInFanOut: true,
      });
    this.wte = this.embeddingTable("transformer.wte.weight", quantized);
    this.wpe = this.param("transformer.wpe.weight");
    const { C, F, V } = d;
    for (let l = 0; l < d.L; l++) {
      const p = `transformer.h.${l}`;
      this.layerWeights.push({
        ln1: norm(`${p}.ln_1`),
        ln2: norm(`${p}.ln_2`),
        attn: conv1d(`${p}.attn.c_attn`, C, 3 * C),
        proj: conv1d(`${p}.attn.c_proj`, C, C),
        fc: conv1d(`${p}.mlp.c_fc`, C, F),
        fcProj: conv1d(`${p}.mlp.c_proj`, F, C),
      });
    }
    this.lnf = norm("transformer.ln_f");
    // lm_head is an nn.Linear (out, in); tied, its weight IS transformer.wte.weight
    const headName = d.tied ? "transformer.wte.weight" : "lm_head.weight";
    this.lmHead = linear(
      {
        path: "lm_head",
        inFeatures: C,
        outFeatures: V,
        weightName: headName,
        biasName: null,
        fanInFanOut: false,
      },
      d.tied,
    );
  }

  protected override createPlan(B: number, T: number, layout: PlanLayout): Plan {
    return new Plan(this.kernels, this.d, B, T, layout);
  }

  private attentionScale(layer: number): number {
    // modeling_gpt2.py: scaling = head_dim ** -0.5 (scale_attn_weights), / (layer_idx + 1)
    const base = this.d.scaleWeights ? 1 / Math.sqrt(this.d.D) : 1;
    return this.d.scaleByLayer ? base / (layer + 1) : base;
  }

  protected override forwardPass(plan: Plan): void {
    const k = this.kernels;
    const d = this.d;
    const x0 = d.L > 0 ? plan.layers[0].x : plan.xFinal;
    this.wte.lookup(k, x0, plan.ids);
    k.embedding(plan.posEmb, this.wpe, plan.positions);
    k.add(x0, x0, plan.posEmb);
    for (let l = 0; l < d.L; l++)
      this.layerForward(plan, l, l + 1 < d.L ? plan.layers[l + 1].x : plan.xFinal);
    k.layernorm(
      plan.nf,
      plan.meanf,
      plan.rstdf,
      plan.xFinal,
      this.lnf.weight,
      this.lnf.bias,
      d.eps,
    );
  }

  /**
   * Layer l from its input plan.layers[l].x: fills its activations, writes its output to xOut
   * (R, C). recompute: gradient checkpointing's repeat of the layer before its backward.
   */
  private layerForward(plan: Plan, l: number, xOut: Tensor, recompute = false): void {
    const k = this.kernels;
    const d = this.d;
    const { B, T } = plan;
    const w = this.layerWeights[l];
    const a = plan.layers[l];
    // attention block
    k.layernorm(a.n1, a.mean1, a.rstd1, a.x, w.ln1.weight, w.ln1.bias, d.eps);
    w.attn.forward(k, plan.qkv, a.n1, recompute);
    k.permute0213(a.qkvh, plan.qkv.view([B, T, 3 * d.H, d.D])); // -> (B, 3H, T, D)
    const scale = this.attentionScale(l);
    const qkv = qkvHeads(d, a.qkvh);
    plan.attention.forward(k, plan.attnOut, ...qkv, plan.keyLengths, a.probs, { scale });
    k.permute0213(a.atty.view([B, T, d.H, d.D]), plan.attnOut);
    w.proj.forward(k, a.x2, a.atty, recompute);
    k.add(a.x2, a.x2, a.x);
    // MLP block
    k.layernorm(a.n2, a.mean2, a.rstd2, a.x2, w.ln2.weight, w.ln2.bias, d.eps);
    w.fc.forward(k, a.fc, a.n2, recompute);
    k.gelu(a.h, a.fc, d.gelu);
    w.fcProj.forward(k, xOut, a.h, recompute);
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
    const { C, H, D, F } = d;
    const N = rows.length;
    const R = N * Tn;
    const x = s.x.view([R, C]);
    const posEmb = s.posEmb.view([R, C]);
    const n = s.n.view([R, C]);
    const mean = s.mean.view([R]);
    const rstd = s.rstd.view([R]);
    const qkv = s.qkv.view([R, 3 * C]);
    const qkvh = s.qkvh.view([N, 3 * H, Tn, D]);
    const attnOut = s.attnOut.view([N, H, Tn, D]);
    const atty = s.atty.view([R, C]);
    const x2 = s.x2.view([R, C]);
    const fc = s.fc.view([R, F]);
    const h = s.h.view([R, F]);
    // row r of qkvh (3H, Tn, D) holds Q, K, V (H, Tn, D) one after the other
    const part = (which: number) => (r: number) =>
      qkvh.view([H, Tn, D], (3 * r + which) * H * Tn * D);
    this.wte.lookup(k, x, s.ids.view([R]));
    k.embedding(posEmb, this.wpe, s.positions.view([R]));
    k.add(x, x, posEmb);
    for (let l = 0; l < d.L; l++) {
      const w = this.layerWeights[l];
      // attention block
      k.layernorm(n, mean, rstd, x, w.ln1.weight, w.ln1.bias, d.eps);
      w.attn.forward(k, qkv, n);
      k.permute0213(qkvh, qkv.view([N, Tn, 3 * H, D])); // -> (N, 3H, Tn, D)
      cachedAttention(
        k,
        cache,
        l,
        rows,
        part(0),
        part(1),
        part(2),
        attnOut,
        s.scores,
        this.attentionScale(l),
      );
      k.permute0213(atty.view([N, Tn, H, D]), attnOut);
      w.proj.forward(k, x2, atty);
      k.add(x2, x2, x);
      // MLP block (the layer output overwrites x: its input is no longer needed)
      k.layernorm(n, mean, rstd, x2, w.ln2.weight, w.ln2.bias, d.eps);
      w.fc.forward(k, fc, n);
      k.gelu(h, fc, d.gelu);
      w.fcProj.forward(k, x, h);
      k.add(x, x, x2);
    }
    return x;
  }

  protected override headStep(s: Step, logits: Tensor, hidden: Tensor): void {
    const rows = logits.shape[0];
    const nf = s.nf.view([rows, this.d.C]);
    this.kernels.layernorm(
      nf,
      s.meanf.view([rows]),
      s.rstdf.view([rows]),
      hidden,
      this.lnf.weight,
      this.lnf.bias,
      this.d.eps,
    );
    this.lmHead.forward(this.kernels, logits, nf);
  }

  private layernormBackward(
    dx: Tensor,
    dn: Tensor,
    inp: Tensor,
    norm: Norm,
    mean: Tensor,
    rstd: Tensor,
    grads: ReadonlyMap<string, Tensor> | undefined,
    options?: BackwardOptions,
  ): void {
    const dWeight = gradFor(grads, norm.weightName, norm.weight);
    const dBias = gradFor(grads, norm.biasName, norm.bias);
    this.kernels.layernormBackward(dx, dWeight, dBias, dn, inp, norm.weight, mean, rstd, options);
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
    const { dx, dn } = plan;
    const dWte = gradFor(paramGrads, "transformer.wte.weight", this.wte);
    const dWpe = gradFor(paramGrads, "transformer.wpe.weight", this.wpe);
    const ln1 = d.L > 0 ? this.layerWeights[0].ln1 : null;
    // PyTorch autograd semantics: layer 0's input gradient (c_attn's dInp product and the ln_1
    // backward into d (wte(ids) + wpe(positions))) is computed only when something needs it: the
    // wte or wpe gradient, layer 0's ln_1 weight or bias gradient (they read the same dn), or the
    // caller's inputsEmbedsGrad. LoRA training needs none of them; adapters get theirs regardless.
    const needInputGrad =
      dWte !== null ||
      dWpe !== null ||
      inputsEmbedsGrad !== null ||
      (ln1 !== null &&
        (gradFor(paramGrads, ln1.weightName, ln1.weight) !== null ||
          gradFor(paramGrads, ln1.biasName, ln1.bias) !== null));
    // the first writer of each gradient buffer overwrites it (no zeroing pass); later ones add
    const overwrite = { accumulate: false };
    this.layernormBackward(
      dx,
      dn,
      plan.xFinal,
      this.lnf,
      plan.meanf,
      plan.rstdf,
      paramGrads,
      overwrite,
    );
    for (let l = d.L - 1; l >= 0; l--) {
      const w = this.layerWeights[l];
      const a = plan.layers[l];
      // gradient checkpointing: refill the shared activations from the saved input (adapters
      // replay their dropout masks); the output is recomputed into a discarded buffer
      if (plan.discard !== null) this.layerForward(plan, l, plan.discard, true);
      // MLP block (dx holds d xOut, passed unchanged to d x2 by the residual)
      w.fcProj.backward(k, plan.dH, dx, a.h, paramGrads, true);
      k.geluBackward(plan.dFc, a.fc, plan.dH, d.gelu, overwrite);
      w.fc.backward(k, dn, plan.dFc, a.n2, paramGrads, true);
      this.layernormBackward(dx, dn, a.x2, w.ln2, a.mean2, a.rstd2, paramGrads);
      // attention block (dx holds d x2)
      w.proj.backward(k, plan.dAtty, dx, a.atty, paramGrads, true);
      k.permute0213(plan.dAttnOut, plan.dAtty.view([B, T, d.H, d.D])); // -> (B, H, T, D)
      const dQkv = qkvHeads(d, plan.dQkvh);
      const qkv = qkvHeads(d, a.qkvh);
      const p = { scale: this.attentionScale(l) };
      plan.attention.backward(k, ...dQkv, plan.dAttnOut, ...qkv, plan.keyLengths, a.probs, p);
      k.permute0213(plan.dQkv.view([B, T, 3 * d.H, d.D]), plan.dQkvh); // -> (B, T, 3H, D)
      const dn1 = l > 0 || needInputGrad ? dn : null; // d n1, or null: layer 0's input gradient is skipped
      w.attn.backward(k, dn1, plan.dQkv, a.n1, paramGrads, true);
      if (dn1 !== null) this.layernormBackward(dx, dn1, a.x, w.ln1, a.mean1, a.rstd1, paramGrads);
    }
    // dx = d (wte(ids) + wpe(positions)) = d wte(ids) = d wpe(positions) when needInputGrad (stale
    // otherwise, and then unread)
    if (dWte !== null) k.embeddingBackward(dWte, dx, plan.ids);
    if (dWpe !== null) k.embeddingBackward(dWpe, dx, plan.positions);
    if (inputsEmbedsGrad !== null) k.copy(inputsEmbedsGrad, dx);
  }
}

/** Registry entry: builds a GPT-2 model from its config and checkpoint. */
export async function createGpt2(
  config: Gpt2Config,
  checkpoint: CheckpointSource,
  kernels: Kernels,
  source: string,
  storage: WeightLoadOptions = {},
): Promise<CausalLM> {
  const d = dimsOf(config);
  const specs = paramSpecs(d, checkpoint);
  const { params, quantized } = await loadDecoderParams(
    kernels,
    checkpoint,
    specs,
    source,
    storage,
    {
      tokenEmbedding: "transformer.wte.weight",
      embeddings: ["transformer.wte.weight", "transformer.wpe.weight"],
      fanInFanOut: (name) => name.startsWith("transformer.h."),
    },
  );
  return new Gpt2Model(config, d, params, kernels, quantized);
}
