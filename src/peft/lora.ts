// The LoRA layer: a LinearAdapter (models/linear.ts) with PEFT's semantics (peft.tuners.lora.layer.Linear):
//   y += s * B (A (dropout(x)))        A (r, in) = lora_A.weight, B (out, r) = lora_B.weight
// with s the LoRA scaling (config.ts loraScaling). Forward and backward run on kernels.matmul;
// backward ACCUMULATES dA, dB (owned here, zeroed by zeroGrad()) and dInp (the model's buffer).
// Without dropout the layer offers its last product of each direction as a term (forwardTerm,
// backwardTerm) that the base layer fuses into its own matmul (kernels MatmulOptions.plus).
// Dropout (PEFT's nn.Dropout(p) on the adapter branch only, train mode only): a seeded Bernoulli
// keep-mask scaled by 1/(1-p), drawn per forward call (replayed, not redrawn, by a gradient-
// checkpointing recompute of the same call); default p = 0 (identity, no copy).
// merge()/unmerge() add/subtract s B A to/from the base weight in its stored layout
// (W^T for fan_in_fan_out, GPT-2 Conv1D), as PEFT's merge / get_delta_weight do.
// Memory: per-call scratch (R, r) and, with dropout, (R, in) is allocated once for the largest R
// seen and reused through views; dispose() frees everything this layer allocated.

import type { Kernels, MatmulTerm } from "../kernels/kernels.js";
import type { LinearAdapter, LinearInfo } from "../models/linear.js";
import { assertShape } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../util/random.js";

export interface LoraLinearOptions {
  r: number;
  /** LoRA scaling s. */
  scaling: number;
  /** (r, in) initial lora_A.weight. */
  A: Float32Array;
  /** (out, r) initial lora_B.weight. */
  B: Float32Array;
  /** Dropout probability on the adapter input (default 0). */
  dropout?: number;
  /** Needed when dropout > 0. */
  rng?: Rng;
  /** Allocate dA/dB and accumulate them in backward (default true). */
  trainable?: boolean;
}

export interface LoraParameter {
  /** PEFT state-dict name without the "base_model.model." prefix, e.g. "<path>.lora_A.weight". */
  name: string;
  param: Tensor;
  grad: Tensor | null;
}

export class LoraLinear implements LinearAdapter {
  readonly info: LinearInfo;
  readonly r: number;
  readonly scaling: number;
  readonly dropout: number;
  /** (r, in) */
  readonly A: Tensor;
  /** (out, r) */
  readonly B: Tensor;
  /** (r, in) or null when frozen */
  readonly dA: Tensor | null;
  /** (out, r) or null when frozen */
  readonly dB: Tensor | null;
  /**
   * Dropout active (PEFT: module.train()); no effect when dropout is 0. A trainable layer starts in
   * training mode, a frozen one in evaluation mode (PEFT's from_pretrained without is_trainable).
   */
  training: boolean;
  private readonly kernels: Kernels;
  private readonly rng: Rng | null;
  private scratchRows = 0;
  private xaBuf: Tensor | null = null; // (Rmax, r)
  private dxaBuf: Tensor | null = null; // (Rmax, r)
  private maskBuf: Tensor | null = null; // (Rmax, in) dropout keep-mask * 1/(1-p)
  private xdBuf: Tensor | null = null; // (Rmax, in) dropped input / dInp staging
  private lastRows = -1;
  private lastDropped = false;

  constructor(kernels: Kernels, info: LinearInfo, options: LoraLinearOptions) {
    const { r } = options;
    if (!Number.isSafeInteger(r) || r < 1)
      throw new Error(`LoRA ${info.path}: r must be a positive integer, got ${r}`);
    if (options.A.length !== r * info.inFeatures) {
      throw new Error(
        `LoRA ${info.path}: lora_A has ${options.A.length} values, expected (r, in) = (${r}, ${info.inFeatures})`,
      );
    }
    if (options.B.length !== info.outFeatures * r) {
      throw new Error(
        `LoRA ${info.path}: lora_B has ${options.B.length} values, expected (out, r) = (${info.outFeatures}, ${r})`,
      );
    }
    const p = options.dropout ?? 0;
    if (!(p >= 0 && p < 1))
      throw new Error(`LoRA ${info.path}: dropout must be in [0, 1), got ${p}`);
    if (p > 0 && options.rng === undefined)
      throw new Error(`LoRA ${info.path}: dropout ${p} needs an rng`);
    this.kernels = kernels;
    this.info = info;
    this.r = r;
    this.scaling = options.scaling;
    this.dropout = p;
    this.rng = options.rng ?? null;
    const heap = kernels.heap;
    this.A = heap.fromArray(options.A, [r, info.inFeatures]);
    this.B = heap.fromArray(options.B, [info.outFeatures, r]);
    const trainable = options.trainable ?? true;
    this.training = trainable;
    this.dA = trainable ? heap.zeros([r, info.inFeatures]) : null;
    this.dB = trainable ? heap.zeros([info.outFeatures, r]) : null;
  }

  parameters(): LoraParameter[] {
    return [
      { name: `${this.info.path}.lora_A.weight`, param: this.A, grad: this.dA },
      { name: `${this.info.path}.lora_B.weight`, param: this.B, grad: this.dB },
    ];
  }

  zeroGrad(): void {
    if (this.dA !== null) this.kernels.fill(this.dA, 0);
    if (this.dB !== null) this.kernels.fill(this.dB, 0);
  }

  private ensureScratch(rows: number): void {
    if (rows <= this.scratchRows) return;
    this.freeScratch();
    const heap = this.kernels.heap;
    this.xaBuf = heap.tensor([rows, this.r]);
    this.dxaBuf = heap.tensor([rows, this.r]);
    if (this.dropout > 0) {
      this.maskBuf = heap.tensor([rows, this.info.inFeatures]);
      this.xdBuf = heap.tensor([rows, this.info.inFeatures]);
    }
    this.scratchRows = rows;
  }

  private rowsOf(t: Tensor, cols: number, what: string): number {
    if (t.size % cols !== 0)
      throw new Error(`LoRA ${this.info.path}: ${what} ${t.toString()} is not (R, ${cols})`);
    return t.size / cols;
  }

  /**
   * Fused forward (LinearAdapter.forwardTerm): xa = inp A^T, returned as the term s xa B^T for the
   * base layer's matmul. Null with dropout active (the dropped input needs forward's own path).
   */
  forwardTerm(inp: Tensor, recompute = false): MatmulTerm | null {
    if (this.dropout > 0 && this.training) return null;
    const xa = this.project(inp, this.rowsOf(inp, this.info.inFeatures, "input"), recompute);
    return { a: xa, b: this.B, transB: true, alpha: this.scaling }; // s xa (R, r) B^T (r, out)
  }

  /**
   * Fused backward (LinearAdapter.backwardTerm): the parameter gradients as in backward, and the
   * dInp contribution dxa A returned as a term. Null after a dropped forward (backward's path).
   */
  backwardTerm(dOut: Tensor, inp: Tensor): MatmulTerm | null {
    if (this.lastDropped) return null;
    const dxa = this.paramGrads(dOut, inp);
    return { a: dxa, b: this.A }; // dxa (R, r) A (r, in)
  }

  /**
   * out (R, out) += s * (dropout(inp) A^T) B^T, inp (R, in). recompute: the same call again
   * (gradient checkpointing), with the previous call's dropout mask.
   */
  forward(out: Tensor, inp: Tensor, recompute = false): void {
    const { inFeatures: n, outFeatures: m } = this.info;
    const rows = this.rowsOf(inp, n, "input");
    assertShape(`LoRA ${this.info.path}: output rows`, [out.size], [rows * m]);
    const xa = this.project(inp, rows, recompute);
    this.kernels.matmul(out.reshape([rows, m]), xa, this.B, {
      transB: true,
      accumulate: true,
      alpha: this.scaling,
    }); // += s xa B^T
  }

  /**
   * Forward's first half: xa = dropout(inp) A^T (R, r), in this layer's scratch; draws the dropout
   * mask when dropout is active (a recompute reuses the previous call's mask) and remembers what
   * backward needs (rows, whether it dropped).
   */
  private project(inp: Tensor, rows: number, recompute: boolean): Tensor {
    const n = this.info.inFeatures;
    this.ensureScratch(rows);
    const k = this.kernels;
    const inp2 = inp.reshape([rows, n]);
    const xa = (this.xaBuf as Tensor).view([rows, this.r]);
    let x = inp2;
    const replay = recompute && this.lastDropped;
    if (recompute && rows !== this.lastRows) {
      throw new Error(
        `LoRA ${this.info.path}: recompute of ${rows} rows after a forward of ${this.lastRows} rows`,
      );
    }
    this.lastDropped = this.dropout > 0 && this.training;
    if (this.lastDropped) {
      const mask = (this.maskBuf as Tensor).view([rows, n]);
      if (!replay) {
        const keep = 1 - this.dropout;
        const mv = mask.f32();
        const rng = this.rng as Rng;
        for (let i = 0; i < mv.length; i++) mv[i] = rng.uniform() < keep ? 1 / keep : 0;
        k.upload(mask);
      }
      x = (this.xdBuf as Tensor).view([rows, n]);
      k.mul(x, inp2, mask);
    }
    k.matmul(xa, x, this.A, { transB: true }); // (R, r) = x (R, in) A^T
    this.lastRows = rows;
    return xa;
  }

  /**
   * With dxa = s * dOut B (R, r): dB += s * dOut^T xa, dA += dxa^T dropout(x), dInp += mask * (dxa A).
   * Uses what the matching forward call left behind (xa, the dropout mask and dropped input).
   */
  backward(dInp: Tensor | null, dOut: Tensor, inp: Tensor): void {
    const n = this.info.inFeatures;
    const k = this.kernels;
    const dxa = this.paramGrads(dOut, inp);
    if (dInp === null) return;
    const rows = dxa.shape[0];
    const dInp2 = dInp.reshape([rows, n]);
    if (!this.lastDropped) {
      k.matmul(dInp2, dxa, this.A, { accumulate: true }); // += dxa (R, r) A (r, in)
      return;
    }
    // the dropped input buffer is no longer needed: stage dxa A there, mask it, add it
    const stage = (this.xdBuf as Tensor).view([rows, n]);
    k.matmul(stage, dxa, this.A);
    k.mul(stage, stage, (this.maskBuf as Tensor).view([rows, n]));
    k.add(dInp2, dInp2, stage);
  }

  /**
   * Backward's shared part: dxa = s dOut B (R, r), dB += s dOut^T xa, dA += dxa^T dropout(x), from
   * what the matching forward left behind. Returns dxa (a view of this layer's scratch).
   */
  private paramGrads(dOut: Tensor, inp: Tensor): Tensor {
    const { inFeatures: n, outFeatures: m } = this.info;
    const rows = this.rowsOf(inp, n, "input");
    if (rows !== this.lastRows) {
      throw new Error(
        `LoRA ${this.info.path}: backward for ${rows} rows after a forward of ${this.lastRows} rows`,
      );
    }
    const k = this.kernels;
    const dOut2 = dOut.reshape([rows, m]);
    const xa = (this.xaBuf as Tensor).view([rows, this.r]);
    const dxa = (this.dxaBuf as Tensor).view([rows, this.r]);
    const x = this.lastDropped ? (this.xdBuf as Tensor).view([rows, n]) : inp.reshape([rows, n]);
    k.matmul(dxa, dOut2, this.B, { alpha: this.scaling }); // (R, r) = s dOut (R, out) B (out, r)
    if (this.dB !== null)
      k.matmul(this.dB, dOut2, xa, { transA: true, accumulate: true, alpha: this.scaling });
    if (this.dA !== null) k.matmul(this.dA, dxa, x, { transA: true, accumulate: true });
    return dxa;
  }

  /** weight (stored layout, f32) += s * B A (PEFT merge). */
  merge(weight: Tensor): void {
    this.mergeScaled(weight, this.scaling);
  }

  /** weight -= s * B A (PEFT unmerge). */
  unmerge(weight: Tensor): void {
    this.mergeScaled(weight, -this.scaling);
  }

  private mergeScaled(weight: Tensor, alpha: number): void {
    const { inFeatures: n, outFeatures: m, fanInFanOut } = this.info;
    if (weight.dtype !== "f32")
      throw new Error(
        `LoRA ${this.info.path}: merge needs an f32 base weight, got ${weight.dtype}`,
      );
    assertShape(`LoRA ${this.info.path}: base weight`, weight.shape, fanInFanOut ? [n, m] : [m, n]);
    if (fanInFanOut) {
      // (in, out) += s A^T B^T
      this.kernels.matmul(weight, this.A, this.B, {
        transA: true,
        transB: true,
        accumulate: true,
        alpha,
      });
    } else {
      // (out, in) += s B A
      this.kernels.matmul(weight, this.B, this.A, { accumulate: true, alpha });
    }
  }

  private freeScratch(): void {
    for (const t of [this.xaBuf, this.dxaBuf, this.maskBuf, this.xdBuf]) t?.dispose();
    this.xaBuf = this.dxaBuf = this.maskBuf = this.xdBuf = null;
    this.scratchRows = 0;
  }

  dispose(): void {
    this.freeScratch();
    this.A.dispose();
    this.B.dispose();
    this.dA?.dispose();
    this.dB?.dispose();
  }
}
