// Evaluation metrics, forward only (no gradients, adapters untouched):
// - evaluateLoss: token-weighted mean causal-LM loss over batches (labels shifted by one, -100
//   ignored, as transformers' ForCausalLMLoss) and perplexity = exp(loss).
// - sequence log-likelihoods and classification by label likelihood (the "lm-eval-harness"
//   multiple-choice rule: score each candidate continuation by the sum of its tokens'
//   log-probabilities given the prompt, pick the highest; optionally length-normalised). For an
//   encoder-decoder (t5) the prompt is the encoder input and the continuation the target: T5's
//   GLUE evaluation by label words.
// - GSM8K-style exact match: the final number of a text ("#### 42" if present, else the last
//   number), commas removed, compared numerically.
// Per-token losses come from model.tokenLosses (forward only, no gradients).

import type { Batch, CausalLM } from "../models/model.js";
import { isEncoderDecoder } from "../models/registry.js";

const IGNORE = -100;

/**
 * Per-position negative log-likelihood (B*T) of batch.labels shifted by one; 0 where ignored.
 * model.tokenLosses runs the lm_head on the counted positions only when the ignored ones are a
 * large share (a scored continuation after its prompt, completion-only eval data).
 */
async function tokenNll(
  model: CausalLM,
  batch: Batch,
): Promise<{ nll: Float32Array; counted: Uint8Array }> {
  if (batch.decoder !== undefined) {
    // encoder-decoder: position t of the target predicts labels[t] (no shift)
    const counted = Uint8Array.from(batch.decoder.labels, (l) => (l === IGNORE ? 0 : 1));
    return { nll: await model.tokenLosses(batch), counted };
  }
  const { batchSize: B, seqLen: T } = batch;
  const labels = batch.labels;
  if (labels === undefined) throw new Error("evaluate: batch.labels is required");
  const counted = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) counted[b * T + t] = labels[b * T + t + 1] === IGNORE ? 0 : 1;
  }
  return { nll: await model.tokenLosses(batch), counted };
}

export interface EvalResult {
  /** Mean NLL per counted token over all batches. */
  loss: number;
  perplexity: number;
  tokens: number;
}

/** Token-weighted mean loss over the batches (sum of NLL / number of counted tokens). */
export async function evaluateLoss(model: CausalLM, batches: Iterable<Batch>): Promise<EvalResult> {
  let sum = 0;
  let tokens = 0;
  for (const batch of batches) {
    const { nll, counted } = await tokenNll(model, batch);
    for (let i = 0; i < nll.length; i++) {
      if (counted[i] === 1) {
        sum += nll[i];
        tokens++;
      }
    }
  }
  const loss = tokens === 0 ? Number.NaN : sum / tokens;
  return { loss, perplexity: Math.exp(loss), tokens };
}

/**
 * Sum of log p(continuation | prompt) for each (prompt, continuation) pair, scored in one
 * right-padded batch. Returns [sum of log-probs, number of continuation tokens] per pair.
 */
export async function continuationLogLikelihoods(
  model: CausalLM,
  pairs: readonly { prompt: readonly number[]; continuation: readonly number[] }[],
  padTokenId = 0,
): Promise<{ logProb: number; tokens: number }[]> {
  if (pairs.length === 0) return [];
  if (isEncoderDecoder(model.modelType)) return targetLogLikelihoods(model, pairs, padTokenId);
  const T = Math.max(...pairs.map((p) => p.prompt.length + p.continuation.length));
  const B = pairs.length;
  const inputIds = new Int32Array(B * T).fill(padTokenId);
  const attentionMask = new Int32Array(B * T);
  const labels = new Int32Array(B * T).fill(IGNORE);
  pairs.forEach((p, b) => {
    if (p.prompt.length === 0 || p.continuation.length === 0)
      throw new Error(`score: pair ${b} needs a non-empty prompt and continuation`);
    const seq = [...p.prompt, ...p.continuation];
    seq.forEach((id, t) => {
      inputIds[b * T + t] = id;
      attentionMask[b * T + t] = 1;
      if (t >= p.prompt.length) labels[b * T + t] = id;
    });
  });
  const { nll, counted } = await tokenNll(model, {
    batchSize: B,
    seqLen: T,
    inputIds,
    attentionMask,
    labels,
  });
  return pairs.map((_, b) => {
    let logProb = 0;
    let tokens = 0;
    for (let t = 0; t < T; t++) {
      if (counted[b * T + t] === 1) {
        logProb -= nll[b * T + t];
        tokens++;
      }
    }
    return { logProb, tokens };
  });
}

/** continuationLogLikelihoods of an encoder-decoder: prompt -> encoder, continuation -> target. */
async function targetLogLikelihoods(
  model: CausalLM,
  pairs: readonly { prompt: readonly number[]; continuation: readonly number[] }[],
  padTokenId: number,
): Promise<{ logProb: number; tokens: number }[]> {
  const B = pairs.length;
  const Te = Math.max(...pairs.map((p) => p.prompt.length));
  const Td = Math.max(...pairs.map((p) => p.continuation.length));
  const inputIds = new Int32Array(B * Te).fill(padTokenId);
  const attentionMask = new Int32Array(B * Te);
  const labels = new Int32Array(B * Td).fill(IGNORE);
  pairs.forEach((p, b) => {
    if (p.prompt.length === 0 || p.continuation.length === 0)
      throw new Error(`score: pair ${b} needs a non-empty prompt and continuation`);
    p.prompt.forEach((id, t) => {
      inputIds[b * Te + t] = id;
      attentionMask[b * Te + t] = 1;
    });
    p.continuation.forEach((id, t) => {
      labels[b * Td + t] = id;
    });
  });
  const decoder = { seqLen: Td, labels };
  const nll = await model.tokenLosses({
    batchSize: B,
    seqLen: Te,
    inputIds,
    attentionMask,
    decoder,
  });
  return pairs.map((p, b) => {
    let logProb = 0;
    for (let t = 0; t < p.continuation.length; t++) logProb -= nll[b * Td + t];
    return { logProb, tokens: p.continuation.length };
  });
}

/** Index of the candidate with the highest (optionally per-token) log-likelihood, and all scores. */
export async function classifyByLikelihood(
  model: CausalLM,
  prompt: readonly number[],
  candidates: readonly (readonly number[])[],
  options: { lengthNormalize?: boolean; padTokenId?: number } = {},
): Promise<{ index: number; scores: number[] }> {
  const ll = await continuationLogLikelihoods(
    model,
    candidates.map((c) => ({ prompt, continuation: c })),
    options.padTokenId ?? 0,
  );
  const scores = ll.map((x) => (options.lengthNormalize ? x.logProb / x.tokens : x.logProb));
  let index = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[index]) index = i;
  return { index, scores };
}

const NUMBER_RE = /-?\d[\d,]*(?:\.\d+)?|-?\.\d+/g;

/** The final answer number of a GSM8K-style text: after "####" if present, else the last number. */
export function extractFinalNumber(text: string): string | null {
  const marker = text.lastIndexOf("####");
  const region = marker >= 0 ? text.slice(marker + 4) : text;
  const all = region.match(NUMBER_RE);
  if (all === null) return null;
  const pick = marker >= 0 ? all[0] : all[all.length - 1];
  return pick.replace(/,/g, "");
}

/** True when prediction and reference have the same final number (compared numerically). */
export function gsm8kExactMatch(prediction: string, reference: string): boolean {
  const p = extractFinalNumber(prediction);
  const r = extractFinalNumber(reference);
  if (p === null || r === null) return false;
  const pn = Number(p);
  const rn = Number(r);
  return Number.isFinite(pn) && Number.isFinite(rn) ? pn === rn : p === r;
}
