// Test support for test/peft: reading the PEFT fixtures (scripts/fixtures/make_peft_loraga.py)
// and small float64 matrix helpers for sign-invariant comparisons (docs/lora-ga-spec.md §9.2).

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { LinearInfo } from "../../src/models/linear.js";
import { readTensors } from "../helpers/tensors.js";
import { matmul as mm, transpose } from "../linalg/linalg-helpers.js";

export const FIXTURES = fileURLToPath(new URL("../fixtures/peft/", import.meta.url));

export interface FixtureCase {
  name: string;
  model: "llama" | "gpt2" | "gemma";
  r: number;
  lora_alpha: number;
  use_rslora: boolean;
  direction: "ArB2r" | "A2rBr" | "ArBr";
  scale: "stable" | "gd_scale" | "unit" | "weight_svd";
  stable_gamma: number;
}

export interface FixtureMeta {
  cases: FixtureCase[];
  models: Record<
    string,
    {
      linears: { path: string; in: number; out: number; fan_in_fan_out: boolean }[];
      targets: string[];
    }
  >;
}

export function readMeta(): FixtureMeta {
  return JSON.parse(readFileSync(`${FIXTURES}cases.json`, "utf8")) as FixtureMeta;
}

export function linearInfos(meta: FixtureMeta, model: string): LinearInfo[] {
  return meta.models[model].linears.map((l) => ({
    path: l.path,
    inFeatures: l.in,
    outFeatures: l.out,
    weightName: `${l.path}.weight`,
    biasName: null,
    fanInFanOut: l.fan_in_fan_out,
  }));
}

/** Every tensor of a fixture file as Float32Array. */
export function readAll(file: string): Promise<Map<string, Float32Array>> {
  return readTensors(`${FIXTURES}${file}`);
}

export function get(map: Map<string, Float32Array>, key: string): Float32Array {
  const v = map.get(key);
  if (v === undefined) throw new Error(`fixture tensor ${key} missing`);
  return v;
}

// mm: the (m, n) row-major product of a (m, k) and b (k, n), float64; transpose: of an (m, n)
// matrix. Both are test/linalg's helpers.
export { mm, transpose };

/** X^T X for X (rows, cols): (cols, cols). */
export function gramCols(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  return mm(transpose(x, rows, cols), x, cols, rows, cols);
}

/** X X^T for X (rows, cols): (rows, rows). */
export function gramRows(x: ArrayLike<number>, rows: number, cols: number): Float64Array {
  return mm(x, transpose(x, rows, cols), rows, cols, rows);
}

export function frob(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Norms of the rows of X (rows, cols). */
export function rowNorms(x: ArrayLike<number>, rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += x[i * cols + j] ** 2;
    out.push(Math.sqrt(s));
  }
  return out;
}

/** Norms of the columns of X (rows, cols). */
export function colNorms(x: ArrayLike<number>, rows: number, cols: number): number[] {
  return rowNorms(transpose(x, rows, cols), cols, rows);
}

/** (out, in) view of a stored matrix. */
export function outIn(
  stored: ArrayLike<number>,
  out: number,
  inF: number,
  fanInFanOut: boolean,
): Float64Array {
  return fanInFanOut ? transpose(stored, inF, out) : Float64Array.from(stored);
}
