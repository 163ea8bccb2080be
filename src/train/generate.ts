// Text generation (token ids in, token ids out): greedy, or temperature + top-p (nucleus) sampling
// with a seeded Rng; batched over prompts of different lengths; each row stops at EOS or after
// maxNewTokens.
// Incremental decoding with the model's KV cache (CausalLM.createCache / forwardCached): each
// prompt is prefilled once (rows of equal length together, logits of the last token only), then
// every step feeds one token per unfinished row at that row's own position. A cache for
// (prompts, longest prompt + maxNewTokens - 1) is allocated per call and disposed at the end, so
// the cost is one token's forward per generated token, not a forward of the whole sequence.
// Sampling follows transformers' order: logits / temperature, softmax, top-p keeps the smallest set
// of most likely tokens whose probability reaches top_p (at least one token), renormalise, draw.
// Ties in greedy decoding pick the lowest token id (torch.argmax returns the first maximum).
// Random draws happen per step in row order (row 0's token, row 1's, ...), as a full-forward loop
// over the batch would draw them.
// Encoder-decoder models (t5) take seq2seq-generate.ts's greedy path (the prompt is the encoder's
// input; no cache yet).

import type { CausalLM } from "../models/model.js";
import { isEncoderDecoder } from "../models/registry.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../util/random.js";
import { generateSeq2Seq } from "./seq2seq-generate.js";

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
  /** Pads the encoder batch of an encoder-decoder model (the cached decoder never pads). */
  padTokenId?: number;
}

/**
 * Generates continuations for every prompt; returns the new tokens of each row. Asynchronous
 * because a deferred engine (webgpu) delivers each step's logits by a download.
 */
export async function generate(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<number[][]> {
  const { maxNewTokens } = options;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0)
    throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
  const temperature = options.temperature ?? 0;
  const topP = options.topP ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature))
    throw new Error(`generate: temperature must be >= 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${topP}`);
  if (temperature > 0 && options.rng === undefined)
    throw new Error("generate: sampling (temperature > 0) needs an rng");
  const eos = new Set(
    options.eosTokenId === undefined || options.eosTokenId === null
      ? []
      : typeof options.eosTokenId === "number"
        ? [options.eosTokenId]
        : options.eosTokenId,
  );
  prompts.forEach((p, i) => {
    if (p.length === 0) throw new Error(`generate: prompt ${i} is empty`);
  });
  if (isEncoderDecoder(model.modelType)) {
    if (temperature > 0) throw new Error(`generate: ${model.modelType} generates greedily only`);
    return generateSeq2Seq(model, prompts, {
      maxNewTokens,
      eos,
      padTokenId: options.padTokenId ?? 0,
    });
  }
  const out: number[][] = prompts.map(() => []);
  if (maxNewTokens === 0 || prompts.length === 0) return out;
  const pick = (row: Float32Array): number =>
    temperature === 0 ? argmax(row) : sample(row, temperature, topP, options.rng as Rng);
  const done = prompts.map(() => false);
  const emit = (i: number, token: number): void => {
    out[i].push(token);
    if (eos.has(token) || out[i].length >= maxNewTokens) done[i] = true;
  };
  // the last generated token is never fed back, hence the - 1
  const maxLength = Math.max(...prompts.map((p) => p.length)) + maxNewTokens - 1;
  const cache = model.createCache(prompts.length, maxLength);
  try {
    // prefill: rows of equal prompt length in one step (longest first: the step scratch is sized
    // once); the last-token logits are kept so that the first draws happen in row order
    const byLength = new Map<number, number[]>();
    prompts.forEach((p, i) => {
      byLength.set(p.length, [...(byLength.get(p.length) ?? []), i]);
    });
    const firstLogits: Float32Array[] = [];
    for (const [len, rows] of [...byLength].sort(
      (a, b) => b[0] * b[1].length - a[0] * a[1].length,
    )) {
      const inputIds = new Int32Array(rows.length * len);
      rows.forEach((i, n) => {
        inputIds.set(prompts[i], n * len);
      });
      const logits = await readLogits(
        model,
        model.forwardCached(cache, { rows, inputIds, seqLen: len, logits: "last" }),
      ); // (N, 1, V)
      const V = logits.length / rows.length;
      rows.forEach((i, n) => {
        firstLogits[i] = logits.slice(n * V, (n + 1) * V);
      });
    }
    prompts.forEach((_, i) => {
      emit(i, pick(firstLogits[i]));
    });
    // decode: one token per unfinished row per step
    for (;;) {
      const rows = prompts.map((_, i) => i).filter((i) => !done[i]);
      if (rows.length === 0) break;
      const inputIds = Int32Array.from(rows, (i) => out[i][out[i].length - 1]);
      const logits = await readLogits(
        model,
        model.forwardCached(cache, { rows, inputIds, seqLen: 1 }),
      ); // (N, 1, V)
      const V = logits.length / rows.length;
      rows.forEach((i, n) => {
        emit(i, pick(logits.subarray(n * V, (n + 1) * V)));
      });
    }
  } finally {
    cache.dispose();
  }
  return out;
}

/** A step's logits on the host (the step's one download on a deferred engine). */
async function readLogits(model: CausalLM, logits: Tensor): Promise<Float32Array> {
  await model.kernels.download(logits);
  return logits.f32();
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
  const order = Array.from({ length: row.length }, (_, v) => v).sort(
    (a, b) => probs[b] - probs[a] || a - b,
  );
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
