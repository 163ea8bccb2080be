// T5's sizes, parameter spec and activation plan (models/t5.ts runs the forward and backward on
// them). One plan per (B, Te, Td): every saved activation of both stacks, the position biases,
// the head's chunk buffers and the scratch shared by all layers, allocated once.
// Legend: B batch, Te encoder tokens, Td decoder (target) tokens, Re = B*Te, Rd = B*Td, C d_model,
// H heads, D d_kv, I = H*D, F d_ff, V vocab, NB position buckets.

import type { T5Activation, T5Config } from "../io/hf-config.js";
import type { Heap } from "../tensor/heap.js";
import type { Tensor } from "../tensor/tensor.js";
import { type PositionBiasBuffers, relativeBuckets } from "./biased-attention.js";
import type { ParamSpec } from "./common.js";
import type { CountedRows, HeadBuffers } from "./lm-head.js";

/** Architecture numbers derived from the config once. */
export interface T5Dims {
  V: number;
  C: number;
  H: number;
  D: number;
  F: number;
  /** Encoder and decoder layers. */
  Le: number;
  Ld: number;
  NB: number;
  maxDistance: number;
  eps: number;
  gated: boolean;
  act: T5Activation;
  /** The decoder output's factor before the lm_head: d_model^-0.5, or 1. */
  headScale: number;
  /** lm_head is shared.weight (no lm_head.weight in the checkpoint). */
  tied: boolean;
  padId: number;
  startId: number;
}

export function t5DimsOf(config: T5Config, tied: boolean): T5Dims {
  return {
    V: config.vocab_size,
    C: config.d_model,
    H: config.num_heads,
    D: config.d_kv,
    F: config.d_ff,
    Le: config.num_layers,
    Ld: config.num_decoder_layers,
    NB: config.relative_attention_num_buckets,
    maxDistance: config.relative_attention_max_distance,
    eps: config.layer_norm_epsilon,
    gated: config.is_gated_act,
    act: config.dense_act_fn,
    // T5ForConditionalGeneration.forward: sequence_output * model_dim**-0.5 when scaling
    headScale: config.scale_decoder_outputs ? config.d_model ** -0.5 : 1,
    tied,
    padId: config.pad_token_id,
    startId: config.decoder_start_token_id,
  };
}

/** HF module path prefixes of one layer's blocks (T5Block.layer[i]). */
export function t5BlockPaths(stack: "encoder" | "decoder", l: number) {
  const p = `${stack}.block.${l}.layer`;
  return {
    self: `${p}.0.SelfAttention`,
    selfNorm: `${p}.0.layer_norm.weight`,
    cross: `${p}.1.EncDecAttention`,
    crossNorm: `${p}.1.layer_norm.weight`,
    ff: `${p}.${stack === "decoder" ? 2 : 1}.DenseReluDense`,
    ffNorm: `${p}.${stack === "decoder" ? 2 : 1}.layer_norm.weight`,
  };
}

/** The FFN's input projections: wi, or wi_0 (activated) and wi_1 (T5 v1.1's gated form). */
export function t5FfInputs(gated: boolean): string[] {
  return gated ? ["wi_0", "wi_1"] : ["wi"];
}

/** Parameter names and shapes of a checkpoint of these dims (HF's T5ForConditionalGeneration). */
export function t5ParamSpecs(d: T5Dims): ParamSpec[] {
  const { V, C, H, D, F } = d;
  const I = H * D;
  const specs: ParamSpec[] = [{ name: "shared.weight", shape: [V, C] }];
  for (const [stack, L] of [
    ["encoder", d.Le],
    ["decoder", d.Ld],
  ] as const) {
    for (let l = 0; l < L; l++) {
      const p = t5BlockPaths(stack, l);
      const attention = (path: string) => {
        for (const proj of ["q", "k", "v"])
          specs.push({ name: `${path}.${proj}.weight`, shape: [I, C] });
        specs.push({ name: `${path}.o.weight`, shape: [C, I] });
      };
      attention(p.self);
      if (l === 0)
        specs.push({ name: `${p.self}.relative_attention_bias.weight`, shape: [d.NB, H] });
      specs.push({ name: p.selfNorm, shape: [C] });
      if (stack === "decoder") {
        attention(p.cross);
        specs.push({ name: p.crossNorm, shape: [C] });
      }
      for (const wi of t5FfInputs(d.gated))
        specs.push({ name: `${p.ff}.${wi}.weight`, shape: [F, C] });
      specs.push({ name: `${p.ff}.wo.weight`, shape: [C, F] });
      specs.push({ name: p.ffNorm, shape: [C] });
    }
    specs.push({ name: `${stack}.final_layer_norm.weight`, shape: [C] });
  }
  if (!d.tied) specs.push({ name: "lm_head.weight", shape: [V, C] });
  return specs;
}

/** Saved activations of one attention block (self- or cross-attention). */
export interface AttnActs {
  n: Tensor; // (B*Tq, C) layer_norm output
  rstd: Tensor; // (B*Tq)
  qh: Tensor; // (B, H, Tq, D)
  kh: Tensor; // (B, H, Tk, D)
  vh: Tensor; // (B, H, Tk, D)
  probs: Tensor; // (B, H, Tq, Tk)
  atty: Tensor; // (B*Tq, I) attention output (B, Tq, H, D), the o input
}

/** Saved activations of one feed-forward block. */
export interface FfActs {
  n: Tensor; // (R, C)
  rstd: Tensor; // (R)
  h0: Tensor; // (R, F) wi / wi_0 output
  h1: Tensor | null; // (R, F) wi_1 output (gated)
  act: Tensor | null; // (R, F) act(h0) (gated; else h is act(h0))
  h: Tensor; // (R, F) wo input
}

/** One layer: its input, its blocks, and the residual after each block but the last. */
interface T5LayerActs {
  x: Tensor; // (R, C) layer input
  self: AttnActs;
  x2: Tensor; // (R, C) after self-attention
  cross: AttnActs | null; // decoder only
  x3: Tensor | null; // (R, C) after cross-attention (decoder only)
  ff: FfActs;
}

/** One stack's buffers. */
export interface StackActs {
  T: number;
  ids: Tensor; // (B*T) i32
  keyLengths: Tensor; // (B) i32
  layers: T5LayerActs[];
  xFinal: Tensor; // (B*T, C) last layer's output
  out: Tensor; // (B*T, C) final_layer_norm output (decoder: times headScale, the lm_head input)
  rstd: Tensor; // (B*T)
  bias: Tensor; // (H, T, T) the relative position bias of every layer
  dBias: Tensor; // (H, T, T) its gradient summed over layers
  biasBuf: PositionBiasBuffers;
  dx: Tensor; // (B*T, C) gradient of the residual stream
}

export class T5Plan implements HeadBuffers {
  readonly B: number;
  readonly Te: number;
  readonly Td: number;
  private readonly heap: Heap;
  private readonly owned: Tensor[] = [];
  readonly enc: StackActs;
  readonly dec: StackActs;
  readonly targets: Tensor; // (Rd) i32, the labels
  readonly logits: Tensor; // (chunkRows, V)
  readonly losses: Tensor; // (Rd)
  private compact: CountedRows | null = null;
  private all: Tensor | null = null;
  private readonly chunkRows: number;
  private readonly d: T5Dims;
  // scratch shared by every layer, sized for the larger of the two lengths
  readonly qLin: Tensor; // (Rmax * I)
  readonly kLin: Tensor; // (Rmax * I)
  readonly vLin: Tensor; // (Rmax * I)
  readonly attnOut: Tensor; // (Rmax * I) (B, H, Tq, D)
  readonly dn: Tensor; // (Rmax * C) a norm output's gradient (first: the head's d out)
  readonly dEncOut: Tensor; // (Re, C) d encoder output, summed over the cross-attentions
  readonly dAtty: Tensor; // (Rmax * I)
  readonly dAttnOut: Tensor; // (Rmax * I)
  readonly dQh: Tensor; // (Rmax * I)
  readonly dKh: Tensor; // (Rmax * I)
  readonly dVh: Tensor; // (Rmax * I)
  readonly dQLin: Tensor; // (Rmax * I)
  readonly dKLin: Tensor; // (Rmax * I)
  readonly dVLin: Tensor; // (Rmax * I)
  readonly dProbs: Tensor; // (B * H * Tmax * Tmax)
  readonly dScores: Tensor; // (B * H * Tmax * Tmax)
  readonly dH: Tensor; // (Rmax * F)
  readonly dH0: Tensor; // (Rmax * F)
  readonly dH1: Tensor; // (Rmax * F)
  readonly dAct: Tensor; // (Rmax * F)

  constructor(heap: Heap, d: T5Dims, B: number, Te: number, Td: number, chunkRows: number) {
    this.heap = heap;
    this.d = d;
    this.B = B;
    this.Te = Te;
    this.Td = Td;
    this.chunkRows = chunkRows;
    const { C, H, D, F } = d;
    const I = H * D;
    const t = (shape: number[], dtype: "f32" | "i32" = "f32"): Tensor => {
      const tensor = heap.tensor(shape, dtype);
      this.owned.push(tensor);
      return tensor;
    };
    const tIf = (on: boolean, shape: number[]): Tensor | null => (on ? t(shape) : null);
    const attn = (Tq: number, Tk: number): AttnActs => ({
      n: t([B * Tq, C]),
      rstd: t([B * Tq]),
      qh: t([B, H, Tq, D]),
      kh: t([B, H, Tk, D]),
      vh: t([B, H, Tk, D]),
      probs: t([B, H, Tq, Tk]),
      atty: t([B * Tq, I]),
    });
    const stack = (T: number, L: number, decoder: boolean): StackActs => {
      const R = B * T;
      const layers: T5LayerActs[] = [];
      for (let l = 0; l < L; l++) {
        layers.push({
          x: t([R, C]),
          self: attn(T, T),
          x2: t([R, C]),
          cross: decoder ? attn(T, Te) : null,
          x3: tIf(decoder, [R, C]),
          ff: {
            n: t([R, C]),
            rstd: t([R]),
            h0: t([R, F]),
            h1: tIf(d.gated, [R, F]),
            act: tIf(d.gated, [R, F]),
            h: t([R, F]),
          },
        });
      }
      const buckets = t([T * T], "i32");
      buckets.i32().set(relativeBuckets(T, T, !decoder, d.NB, d.maxDistance));
      return {
        T,
        ids: t([R], "i32"),
        keyLengths: t([B], "i32"),
        layers,
        xFinal: t([R, C]),
        out: t([R, C]),
        rstd: t([R]),
        bias: t([H, T, T]),
        dBias: t([H, T, T]),
        biasBuf: { buckets, gathered: t([T * T, H]) },
        dx: t([R, C]),
      };
    };
    try {
      const Tmax = Math.max(Te, Td);
      const Rmax = B * Tmax;
      this.enc = stack(Te, d.Le, false);
      this.dec = stack(Td, d.Ld, true);
      this.targets = t([B * Td], "i32");
      this.logits = t([chunkRows, d.V]);
      this.losses = t([B * Td]);
      this.qLin = t([Rmax * I]);
      this.kLin = t([Rmax * I]);
      this.vLin = t([Rmax * I]);
      this.attnOut = t([Rmax * I]);
      this.dn = t([Rmax * C]);
      this.dEncOut = t([B * Te, C]);
      this.dAtty = t([Rmax * I]);
      this.dAttnOut = t([Rmax * I]);
      this.dQh = t([Rmax * I]);
      this.dKh = t([Rmax * I]);
      this.dVh = t([Rmax * I]);
      this.dQLin = t([Rmax * I]);
      this.dKLin = t([Rmax * I]);
      this.dVLin = t([Rmax * I]);
      this.dProbs = t([B * H * Tmax * Tmax]);
      this.dScores = t([B * H * Tmax * Tmax]);
      this.dH = t([Rmax * F]);
      this.dH0 = t([Rmax * F]);
      this.dH1 = t([Rmax * F]);
      this.dAct = t([Rmax * F]);
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** forward()'s (B, Td, V) logits (the head chunk when it holds every row). */
  allLogits(): Tensor {
    const { B, Td } = this;
    if (this.chunkRows === B * Td) return this.logits.view([B, Td, this.d.V]);
    this.all ??= this.heap.tensor([B, Td, this.d.V]);
    return this.all;
  }

  releaseAllLogits(): void {
    this.all?.dispose();
    this.all = null;
  }

  headRows(): CountedRows {
    if (this.compact === null) {
      const R = this.B * this.Td;
      const t = (shape: number[], dtype: "f32" | "i32" = "f32"): Tensor => {
        const tensor = this.heap.tensor(shape, dtype);
        this.owned.push(tensor);
        return tensor;
      };
      this.compact = {
        rows: t([R], "i32"),
        targets: t([R], "i32"),
        x: t([this.chunkRows, this.d.C]),
        dx: t([this.chunkRows, this.d.C]),
      };
    }
    return this.compact;
  }

  dispose(): void {
    for (const tensor of this.owned) tensor.dispose();
    this.owned.length = 0;
    this.compact = null;
    this.releaseAllLogits();
  }
}
