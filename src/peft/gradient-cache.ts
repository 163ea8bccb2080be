// A cache of per-module weight gradients (the LoRA-GA estimation result) as one .safetensors file,
// keyed by module path ("model.layers.0.self_attn.q_proj"), F32, each in the model's STORED weight
// layout ((out, in), or (in, out) for fan_in_fan_out). __metadata__ may carry free-form strings
// (e.g. the number of batches averaged). Loading checks every entry against the model's linear
// layers and names module and shapes on mismatch; a NaN/Inf or an all-zero gradient names the
// module. Written atomically. A partial sum written by a shard of a sharded estimation
// (gradient-shards.ts) is no gradient cache: loading one is an error that says to reduce first.

import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "../io/safetensors.js";
import type { LinearInfo } from "../models/linear.js";
import { shapeString } from "../tensor/shape.js";

export interface GradientEntry {
  /** Stored-layout shape of the weight. */
  shape: [number, number];
  data: Float32Array;
}

export type GradientMap = Map<string, GradientEntry>;

/** The metadata key that marks a partial gradient sum (gradient-shards.ts). */
export const PARTIAL_KEY = "loraga_partial";

/** The stored-layout shape of a linear layer's weight. */
export function storedWeightShape(info: LinearInfo): [number, number] {
  return info.fanInFanOut
    ? [info.inFeatures, info.outFeatures]
    : [info.outFeatures, info.inFeatures];
}

/**
 * Throws naming the module when a LoRA-GA gradient is all zeros: its SVD has no direction, and the
 * init would silently start from arbitrary singular vectors (no row had a learned token, or the
 * module does not reach the loss).
 */
export function assertNonZeroGradient(path: string, data: Float32Array, where = "gradient"): void {
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) return;
  throw new Error(
    `${where} of module ${path} is all zeros: LoRA-GA has no direction to initialise it from ` +
      "(do the estimation batches have learned tokens? does the module affect the loss?)",
  );
}

/** Throws naming the module when a gradient holds NaN or +-Inf. */
export function assertFiniteGradient(path: string, data: Float32Array, where = "gradient"): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]))
      throw new Error(`${where} of module ${path} contains ${data[i]} at flat index ${i}`);
  }
}

export async function saveGradients(
  path: string,
  grads: ReadonlyMap<string, GradientEntry>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const tensors: TensorToWrite[] = [];
  for (const [name, g] of grads) {
    if (g.data.length !== g.shape[0] * g.shape[1]) {
      throw new Error(
        `saveGradients: module ${name} has ${g.data.length} values for shape ${shapeString(g.shape)}`,
      );
    }
    assertFiniteGradient(name, g.data);
    tensors.push({ name, dtype: "F32", shape: [...g.shape], data: g.data });
  }
  await writeSafetensors(path, tensors, metadata);
}

/**
 * Loads a gradient cache for `linears` (the targeted layers). Every targeted module must be present
 * with its stored weight shape. Entries for other linear layers of the model (`modelLinears`: a
 * cache estimated for a wider target set) are skipped; entries for modules the model does not have
 * are an error (the cache was made for another model).
 */
export async function loadGradients(
  path: string,
  linears: readonly LinearInfo[],
  modelLinears: readonly LinearInfo[] = [],
): Promise<{ grads: GradientMap; metadata: Record<string, string> }> {
  const file = await SafetensorsFile.open(path);
  try {
    if (file.metadata[PARTIAL_KEY] !== undefined) {
      throw new Error(
        `${path} is shard ${file.metadata.shard ?? "?"} of a sharded estimation (a partial sum, not a gradient cache); ` +
          "combine all its shards with `loraga reduce` first",
      );
    }
    const byPath = new Map(linears.map((l) => [l.path, l]));
    const skippable = new Set(modelLinears.map((l) => l.path));
    for (const [name, entry] of file.entries) {
      const info = byPath.get(name);
      if (info === undefined && skippable.has(name)) continue;
      if (info === undefined) {
        throw new Error(
          `${path}: gradient for module ${name} ${shapeString(entry.shape)}, which is not a targeted linear module of this model`,
        );
      }
      const expected = storedWeightShape(info);
      if (
        entry.shape.length !== 2 ||
        entry.shape[0] !== expected[0] ||
        entry.shape[1] !== expected[1]
      ) {
        throw new Error(
          `${path}: gradient for module ${name} has shape ${shapeString(entry.shape)}, but the model's weight is ${shapeString(expected)}`,
        );
      }
    }
    const grads: GradientMap = new Map();
    for (const info of linears) {
      if (!file.entries.has(info.path)) {
        throw new Error(
          `${path}: no gradient for module ${info.path} ${shapeString(storedWeightShape(info))}`,
        );
      }
      const data = await file.readF32(info.path);
      assertFiniteGradient(info.path, data, `${path}: gradient`);
      assertNonZeroGradient(info.path, data, `${path}: gradient`);
      grads.set(info.path, { shape: storedWeightShape(info), data });
    }
    return { grads, metadata: { ...file.metadata } };
  } finally {
    await file.close();
  }
}
