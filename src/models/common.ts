// Pieces every architecture file shares: linear layers with the adapter hook (y = x W^T + b, plus an
// optional adapter delta), loading parameters from a checkpoint by an explicit spec (HF names and
// shapes), and turning a Batch into the causal-LM targets and key lengths the kernels take.
//
// Contract: nothing here allocates in the hot path except through the plan objects the models
// create once per (B, T); helpers only read and write tensors they are given.

import type { Kernels, MatmulCausal } from "../kernels/kernels.js";
import {
  type QuantizedWeight,
  quantizeWeight,
  weightFromHalfBits,
} from "../quant/quantized-linear.js";
import { shapeString } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import type { LinearAdapter, LinearInfo } from "./linear.js";
import type { Batch } from "./model.js";
import { slicedBackward, slicedForward } from "./sliced-linear.js";
import { type FrozenWeight, transpose2d, type WeightStorageKind } from "./weights.js";

/** transformers' ignore_index for labels (CrossEntropyLoss default). */
export const IGNORE_INDEX = -100;

/** A parameter the architecture expects in the checkpoint: HF name and HF storage shape. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** Name in the checkpoint when it differs (e.g. GPT-2 checkpoints saved without "transformer."). */
  readonly stored?: string;
}

/** The part of io/safetensors' Checkpoint the models use. */
export interface CheckpointSource {
  readonly entries: ReadonlyMap<
    string,
    { readonly shape: readonly number[]; readonly file: string; readonly dtype?: string }
  >;
  readInto(name: string, target: Tensor): Promise<void> | void;
  /** A float tensor as a new host Float32Array (io/safetensors' Checkpoint has it). */
  readF32?(name: string): Promise<Float32Array>;
  /** A tensor's stored bytes as they are (io/safetensors' Checkpoint has it). */
  readBytes?(name: string): Promise<Uint8Array>;
}

/** Where loadParams puts linear weights that are not stored as f32 (models/weights.ts). */
export interface LoadStorage {
  /** Storage kind of a parameter ("f32" for everything but compressed linear weights). */
  kindOf(name: string): WeightStorageKind;
  /** True when a float-kind parameter is kept off the heap (offloaded, models/weights.ts). */
  offHeap(name: string): boolean;
  /** True for Conv1D weights stored (in, out) (transposed to (out, in) before quantizing). */
  fanInFanOut(name: string): boolean;
  /**
   * Receives the off-heap weights: int8 / nf4 in (out, in), offloaded f32 / bf16 / f16 in their
   * stored layout (not in the returned params).
   */
  quantized: Map<string, QuantizedWeight>;
}

/**
 * Checks every spec against the checkpoint (one-line error naming the file and the tensor) and
 * reads the tensors into new heap tensors, keyed by HF parameter name: f32, or — per `storage` —
 * bf16 / f16 tensors, or weights off the heap (quantized or offloaded). A compressed tensor passes
 * through at most one temporary f32 copy of its own size (in host memory when the checkpoint can
 * read into it, else on the heap), so loading never holds an f32 copy of the whole model.
 */
export async function loadParams(
  kernels: Kernels,
  checkpoint: CheckpointSource,
  specs: readonly ParamSpec[],
  source: string,
  storage?: LoadStorage,
): Promise<Map<string, Tensor>> {
  // name the file(s) the tensor should have been in: the single file, or every shard
  const files = [...new Set([...checkpoint.entries.values()].map((e) => e.file))];
  const where =
    files.length === 0
      ? source
      : files.length === 1
        ? files[0]
        : `${source} (${files.length} shards)`;
  for (const spec of specs) {
    const stored = spec.stored ?? spec.name;
    const entry = checkpoint.entries.get(stored);
    if (entry === undefined) {
      throw new Error(
        `${where}: tensor ${stored} is missing (expected shape ${shapeString(spec.shape)})`,
      );
    }
    if (
      entry.shape.length !== spec.shape.length ||
      entry.shape.some((d, i) => d !== spec.shape[i])
    ) {
      throw new Error(
        `${entry.file}: tensor ${stored} has shape ${shapeString(entry.shape)}, the config implies ${shapeString(spec.shape)}`,
      );
    }
  }
  const heap = kernels.heap;
  const params = new Map<string, Tensor>();
  try {
    for (const spec of specs) {
      const name = spec.stored ?? spec.name;
      const kind = storage?.kindOf(spec.name) ?? "f32";
      if (isQuantized(kind) || storage?.offHeap(spec.name) === true) {
        if (storage === undefined) throw new Error(`internal: ${spec.name} stored off the heap`);
        const [rows, cols] = spec.shape;
        const raw = isQuantized(kind) ? null : await readHostRaw(checkpoint, name, kind);
        if (raw !== null) {
          storage.quantized.set(spec.name, raw([rows, cols]));
          continue;
        }
        const data = await readHostF32(checkpoint, name, spec.shape, kernels);
        if (isQuantized(kind)) {
          const outIn = storage.fanInFanOut(spec.name);
          const values = outIn ? transpose2d(data, rows, cols) : data;
          storage.quantized.set(
            spec.name,
            quantizeWeight(kind, values, outIn ? [cols, rows] : [rows, cols]),
          );
        } else storage.quantized.set(spec.name, quantizeWeight(kind, data, [rows, cols]));
        continue;
      }
      const sameDtype =
        checkpoint.entries.get(name)?.dtype ===
        (kind === "bf16" ? "BF16" : kind === "f16" ? "F16" : "F32");
      if (kind === "f32" || ((kind === "bf16" || kind === "f16") && sameDtype)) {
        const t = heap.tensor(spec.shape, kind);
        params.set(spec.name, t);
        await checkpoint.readInto(name, t);
        continue;
      }
      const tmp = heap.tensor(spec.shape, "f32");
      try {
        await checkpoint.readInto(name, tmp);
        const t = heap.tensor(spec.shape, kind);
        params.set(spec.name, t);
        kernels.convert(t, tmp);
      } finally {
        tmp.dispose();
      }
    }
  } catch (err) {
    for (const t of params.values()) t.dispose();
    storage?.quantized.clear();
    throw err;
  }
  return params;
}

function isQuantized(kind: WeightStorageKind): kind is "int8" | "nf4" {
  return kind === "int8" || kind === "nf4";
}

/** The checkpoint's dtype name of each float storage kind. */
const STORED_DTYPE = { f32: "F32", bf16: "BF16", f16: "F16" } as const;

/**
 * When the checkpoint stores tensor `name` in exactly `kind` and can read raw bytes: a maker of
 * the off-heap weight over those bytes (no conversion; a 16-bit checkpoint loads at its own size).
 * Null otherwise.
 */
async function readHostRaw(
  checkpoint: CheckpointSource,
  name: string,
  kind: "f32" | "bf16" | "f16",
): Promise<((shape: [number, number]) => QuantizedWeight) | null> {
  if (checkpoint.readBytes === undefined) return null;
  if (checkpoint.entries.get(name)?.dtype !== STORED_DTYPE[kind]) return null;
  const bytes = await checkpoint.readBytes(name);
  if (kind === "f32") {
    const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    return (shape) => quantizeWeight("f32", values, shape);
  }
  const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return (shape) => weightFromHalfBits(kind, bits, shape);
}

/** Checkpoint tensor `name` as host f32 values (through a temporary heap tensor if need be). */
async function readHostF32(
  checkpoint: CheckpointSource,
  name: string,
  shape: readonly number[],
  kernels: Kernels,
): Promise<Float32Array> {
  if (checkpoint.readF32 !== undefined) return checkpoint.readF32(name);
  const tmp = kernels.heap.tensor(shape, "f32");
  try {
    await checkpoint.readInto(name, tmp);
    return tmp.toArray();
  } finally {
    tmp.dispose();
  }
}

/** Gradient tensor of `name` if the caller asked for it, after checking its shape. */
export function gradFor(
  paramGrads: ReadonlyMap<string, Tensor> | undefined,
  name: string,
  param: Shaped,
): Tensor | null {
  const g = paramGrads?.get(name);
  if (g === undefined) return null;
  if (
    g.dtype !== "f32" ||
    g.size !== param.size ||
    g.shape.length !== param.shape.length ||
    g.shape.some((d, i) => d !== param.shape[i])
  ) {
    throw new Error(
      `paramGrads["${name}"]: expected f32 ${shapeString(param.shape)}, got ${g.dtype} ${shapeString(g.shape)}`,
    );
  }
  return g;
}

/** Rejects paramGrads keys that are not parameters of the model (typos would silently do nothing). */
export function checkGradNames(
  paramGrads: ReadonlyMap<string, Tensor> | undefined,
  params: { has(name: string): boolean },
): void {
  if (paramGrads === undefined) return;
  for (const name of paramGrads.keys()) {
    if (!params.has(name))
      throw new Error(`paramGrads: "${name}" is not a parameter of this model`);
  }
}

/** Anything with a shape and an element count (a Tensor, or the shape of a compressed weight). */
interface Shaped {
  readonly shape: readonly number[];
  readonly size: number;
}

/**
 * A linear layer: weight (out, in) as nn.Linear stores it, or (in, out) for GPT-2's Conv1D
 * (fanInFanOut), optional bias (out), optional adapter. Inputs and outputs are (R, in) / (R, out).
 * The weight is held by a FrozenWeight (weights.ts): f32, 16-bit or quantized; compressed kinds are
 * expanded into the model's shared f32 scratch right before each matmul, whole, or a block of
 * output rows at a time when the weight has a row block (the off-heap lm_head: sliced-linear.ts).
 */
export class LinearLayer {
  readonly info: LinearInfo;
  readonly weight: FrozenWeight;
  readonly bias: Tensor | null;
  adapter: LinearAdapter | null = null;

  constructor(info: LinearInfo, weight: FrozenWeight, bias: Tensor | null) {
    this.info = info;
    this.weight = weight;
    this.bias = bias;
  }

  /**
   * out (R, out) = inp (R, in) W^T + b  (+ adapter delta: fused into the matmul when the adapter
   * offers it as a term, LinearAdapter.forwardTerm). `recompute`: a gradient-checkpointing repeat
   * of the previous call (LinearAdapter: adapters replay their random draws).
   */
  forward(kernels: Kernels, out: Tensor, inp: Tensor, recompute = false): void {
    if (this.weight.rowBlock !== null) {
      slicedForward(kernels, this, out, inp, recompute);
      return;
    }
    const term = this.adapter?.forwardTerm?.(inp, recompute) ?? null;
    const { w, outIn } = this.weight.expand(kernels);
    kernels.matmul(out, inp, w, term === null ? { transB: outIn } : { transB: outIn, plus: term });
    if (this.bias !== null) kernels.addBias(out, this.bias);
    if (this.adapter !== null && term === null) this.adapter.forward(out, inp, recompute);
  }

  /**
   * dInp += dOut W (when dInp is given; with `overwriteInput`, dInp = dOut W + the adapter's share:
   * the first writer of a gradient buffer needs no zeroing first); dW += dOut^T inp and db +=
   * colsum(dOut) only when their gradient tensors are given (the dW GEMM is skipped otherwise); the
   * adapter gets its backward. dW is in the weight's stored layout and f32 whatever the weight's storage.
   */
  backward(
    kernels: Kernels,
    dInp: Tensor | null,
    dOut: Tensor,
    inp: Tensor,
    paramGrads: ReadonlyMap<string, Tensor> | undefined,
    overwriteInput = false,
  ): void {
    if (this.weight.rowBlock !== null) {
      const dW = gradFor(paramGrads, this.info.weightName, this.weight);
      slicedBackward(kernels, this, dInp, dOut, inp, dW, overwriteInput);
      this.biasAndAdapterBackward(kernels, dInp, dOut, inp, paramGrads, false);
      return;
    }
    let adapterDone = false;
    if (dInp !== null) {
      // y = x W^T -> dx = dy W (W (out, in)); Conv1D y = x W -> dx = dy W^T (W (in, out));
      // the adapter's share of dx rides along as a term when it offers one
      const term = this.adapter?.backwardTerm?.(dOut, inp) ?? null;
      adapterDone = term !== null;
      const { w, outIn } = this.weight.expand(kernels);
      const options = { transB: !outIn, accumulate: !overwriteInput };
      kernels.matmul(dInp, dOut, w, term === null ? options : { ...options, plus: term });
    }
    const dWeight = gradFor(paramGrads, this.info.weightName, this.weight);
    if (dWeight !== null) {
      // (out, in) += dy^T x ; Conv1D (in, out) += x^T dy
      if (this.info.fanInFanOut)
        kernels.matmul(dWeight, inp, dOut, { transA: true, accumulate: true });
      else kernels.matmul(dWeight, dOut, inp, { transA: true, accumulate: true });
    }
    this.biasAndAdapterBackward(kernels, dInp, dOut, inp, paramGrads, adapterDone);
  }

  /** db += colsum(dOut) when asked for; the adapter's backward unless its term did it. */
  private biasAndAdapterBackward(
    kernels: Kernels,
    dInp: Tensor | null,
    dOut: Tensor,
    inp: Tensor,
    paramGrads: ReadonlyMap<string, Tensor> | undefined,
    adapterDone: boolean,
  ): void {
    if (this.bias !== null && this.info.biasName !== null) {
      const dBias = gradFor(paramGrads, this.info.biasName, this.bias);
      if (dBias !== null) kernels.biasBackward(dBias, dOut);
    }
    if (this.adapter !== null && !adapterDone) this.adapter.backward(dInp, dOut, inp);
  }
}

/** Looks up a linear layer by module path for setAdapter (error lists a few valid paths). */
export function findLinear(layers: ReadonlyMap<string, LinearLayer>, path: string): LinearLayer {
  const layer = layers.get(path);
  if (layer === undefined) {
    const some = [...layers.keys()].slice(0, 4).join(", ");
    throw new Error(`setAdapter: no linear layer "${path}" in this model (e.g. ${some}, ...)`);
  }
  return layer;
}

/** Per-row real lengths (right padding); throws on a mask that is not 1...1 0...0. */
export function keyLengthsOf(batch: Batch, out: Int32Array): void {
  const { batchSize: B, seqLen: T, attentionMask } = batch;
  for (let b = 0; b < B; b++) {
    if (attentionMask === undefined) {
      out[b] = T;
      continue;
    }
    let len = 0;
    while (len < T && attentionMask[b * T + len] === 1) len++;
    for (let t = len; t < T; t++) {
      if (attentionMask[b * T + t] !== 0) {
        throw new Error(
          `batch.attentionMask row ${b} is not right padding (1...1 0...0): value ${attentionMask[b * T + t]} at ${t} after the first 0`,
        );
      }
    }
    out[b] = len;
  }
}

/** Checks the batch arrays against batchSize * seqLen and the vocabulary. */
export function validateBatch(batch: Batch, vocabSize: number, maxPositions: number | null): void {
  const { batchSize: B, seqLen: T } = batch;
  if (!Number.isInteger(B) || !Number.isInteger(T) || B <= 0 || T <= 0) {
    throw new Error(`batch: batchSize and seqLen must be positive integers, got ${B} and ${T}`);
  }
  if (batch.decoder !== undefined)
    throw new Error("batch.decoder: this model is decoder-only (no encoder-decoder targets)");
  const n = B * T;
  if (batch.inputIds.length !== n)
    throw new Error(`batch.inputIds: expected ${n} ids (B*T), got ${batch.inputIds.length}`);
  if (batch.attentionMask !== undefined && batch.attentionMask.length !== n) {
    throw new Error(
      `batch.attentionMask: expected ${n} values (B*T), got ${batch.attentionMask.length}`,
    );
  }
  if (batch.labels !== undefined && batch.labels.length !== n) {
    throw new Error(`batch.labels: expected ${n} values (B*T), got ${batch.labels.length}`);
  }
  if (maxPositions !== null && T > maxPositions) {
    throw new Error(`batch.seqLen ${T} exceeds the model's ${maxPositions} positions`);
  }
  for (let i = 0; i < n; i++) {
    const id = batch.inputIds[i];
    if (id < 0 || id >= vocabSize)
      throw new Error(`batch.inputIds[${i}] = ${id} is outside the vocabulary [0, ${vocabSize})`);
  }
}

/**
 * Causal-LM targets as transformers' ForCausalLMLoss builds them: target[b, t] = labels[b, t + 1],
 * IGNORE_INDEX at t = T - 1. Returns the number of counted (not ignored) targets.
 */
export function shiftLabels(batch: Batch, targets: Int32Array, vocabSize: number): number {
  const { batchSize: B, seqLen: T, labels } = batch;
  if (labels === undefined) throw new Error("lossAndGrads: batch.labels is required");
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const label = t + 1 < T ? labels[b * T + t + 1] : IGNORE_INDEX;
      if (label !== IGNORE_INDEX && (label < 0 || label >= vocabSize)) {
        throw new Error(
          `batch.labels[${b * T + t + 1}] = ${label} is outside the vocabulary [0, ${vocabSize})`,
        );
      }
      targets[b * T + t] = label;
      if (label !== IGNORE_INDEX) count++;
    }
  }
  return count;
}

/**
 * The causal structure of the six attention products of a training forward/backward over T
 * tokens (queries and keys are the same T positions), for MatmulOptions.causal: scores and their
 * gradient are only needed on and below the diagonal (maskOut), and probabilities and their
 * gradients are zero above it (lowerA as the left operand, upperA transposed).
 */
export function causalProducts(T: number): {
  maskOut: MatmulCausal;
  lowerA: MatmulCausal;
  upperA: MatmulCausal;
} {
  return {
    maskOut: { kind: "maskOut", period: T },
    lowerA: { kind: "lowerA", period: T },
    upperA: { kind: "upperA", period: T },
  };
}
