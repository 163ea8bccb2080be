// Text generation (token ids in, token ids out): greedy, or temperature + top-p (nucleus) sampling
// with a seeded Rng; batched over prompts of different lengths (right padding); each row stops at
// EOS or after maxNewTokens.
// KNOWN LIMITATION: there is no KV cache — every new token recomputes the full forward pass over the
// whole sequence (cost O(T^2) forwards per sequence). Fine for evaluation of small models; a cached
// decoder belongs in the models once they expose one.
// Sampling follows transformers' order: logits / temperature, softmax, top-p keeps the smallest set
// of most likely tokens whose probability reaches top_p (at least one token), renormalise, draw.
// Ties in greedy decoding pick the lowest token id (torch.argmax returns the first maximum).

import type { CausalLM } from "../models/model.js";
import type { Rng } from "../util/random.js";

export interface GenerateOptions {
  maxNewTokens: number;
  /** Stop tokens (a row ends after emitting one; it is included in the output). */
  eosTokenId?: number | readonly number[] | null;
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Nucleus sampling threshold in (0, 1]; default 1. */
  topP?: number;
  /** Required when temperature > 0. */
  rng?: Rng;
  /** Fills the padding of shorter rows (never attended to). Default 0. */
  padTokenId?: number;
}

/** Generates continuations for every prompt; returns the new tokens of each row. */
export function generate(model: CausalLM, prompts: readonly (readonly number[])[], options: GenerateOptions): number[][] {
  const { maxNewTokens } = options;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  const temperature = options.temperature ?? 0;
  const topP = options.topP ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new Error(`generate: temperature must be >= 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${topP}`);
  if (temperature > 0 && options.rng === undefined) throw new Error("generate: sampling (temperature > 0) needs an rng");
  const eos = new Set(options.eosTokenId === undefined || options.eosTokenId === null ? [] : typeof options.eosTokenId === "number" ? [options.eosTokenId] : options.eosTokenId);
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`generate: prompt ${i} is empty`);
  });
  const seqs = prompts.map((p) => [...p]);
  const out: number[][] = prompts.map(() => []);
  const done = prompts.map(() => maxNewTokens === 0);
  for (let step = 0; step < maxNewTokens; step++) {
    const active = seqs.map((_, i) => i).filter((i) => !done[i]);
    if (active.length === 0) break;
    const T = Math.max(...active.map((i) => seqs[i].length));
    const B = active.length;
    const inputIds = new Int32Array(B * T).fill(options.padTokenId ?? 0);
    const attentionMask = new Int32Array(B * T);
    active.forEach((i, b) => {
      seqs[i].forEach((id, t) => {
        inputIds[b * T + t] = id;
        attentionMask[b * T + t] = 1;
      });
    });
    const logits = model.forward({ batchSize: B, seqLen: T, inputIds, attentionMask }).f32(); // (B, T, V)
    const V = logits.length / (B * T);
    active.forEach((i, b) => {
      const at = (b * T + seqs[i].length - 1) * V;
      const row = logits.subarray(at, at + V);
      const token = temperature === 0 ? argmax(row) : sample(row, temperature, topP, options.rng as Rng);
      seqs[i].push(token);
      out[i].push(token);
      if (eos.has(token) || out[i].length >= maxNewTokens) done[i] = true;
    });
  }
  return out;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v] > row[best]) best = v;
  return best;
}

/** One draw from softmax(row / temperature) restricted to the top-p nucleus. */
export function sample(row: Float32Array, temperature: number, topP: number, rng: Rng): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let v = 0; v < row.length; v++) max = Math.max(max, row[v] / temperature);
  const probs = new Float64Array(row.length);
  let z = 0;
  for (let v = 0; v < row.length; v++) {
    probs[v] = Math.exp(row[v] / temperature - max);
    z += probs[v];
  }
  for (let v = 0; v < row.length; v++) probs[v] /= z;
  // stable sort by probability, descending (ties: lower id first)
  const order = Array.from({ length: row.length }, (_, v) => v).sort((a, b) => probs[b] - probs[a] || a - b);
  let keep = order.length;
  if (topP < 1) {
    let cum = 0;
    for (let k = 0; k < order.length; k++) {
      cum += probs[order[k]];
      if (cum >= topP) {
        keep = k + 1;
        break;
      }
    }
  }
  let mass = 0;
  for (let k = 0; k < keep; k++) mass += probs[order[k]];
  let u = rng.uniform() * mass;
  for (let k = 0; k < keep; k++) {
    u -= probs[order[k]];
    if (u < 0) return order[k];
  }
  return order[keep - 1];
}
