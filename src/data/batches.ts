// Collates token examples into fixed-shape batches: consecutive examples, right padding, truncation
// at maxLength (keeping the start). Pads get attention mask 0 and label -100. Encoder-decoder
// (seq2seq) examples give the encoder inputs the same way and the targets as batch.decoder: each
// side padded to its own longest row (both cut at maxLength), target pads -100.

import type { TokenExample } from "./examples.js";
import { IGNORE_INDEX } from "./examples.js";

/** Structurally the models' Batch: (B*T) row-major int arrays. */
export interface TokenBatch {
  batchSize: number;
  seqLen: number;
  inputIds: Int32Array; // (B, T)
  attentionMask: Int32Array; // (B, T) 1 = real token, 0 = pad
  labels?: Int32Array; // (B, T) unshifted; -100 = ignored (absent for seq2seq)
  decoder?: { seqLen: number; labels: Int32Array }; // seq2seq: (B, Td) targets, -100 = ignored
}

export interface CollateOptions {
  maxLength: number;
  padTokenId: number;
  /** Pad every batch to maxLength instead of to its longest example. */
  padToMaxLength?: boolean;
}

export function collate(examples: readonly TokenExample[], options: CollateOptions): TokenBatch {
  if (examples.length === 0) throw new Error("collate: no examples");
  if (!Number.isInteger(options.maxLength) || options.maxLength < 1) {
    throw new Error(`collate: maxLength must be a positive integer, got ${options.maxLength}`);
  }
  const seq2seq = examples[0].seq2seq === true;
  if (examples.some((e) => (e.seq2seq === true) !== seq2seq))
    throw new Error("collate: seq2seq and causal examples in one batch");
  const lengths = examples.map((e) => Math.min(e.inputIds.length, options.maxLength));
  const seqLen = options.padToMaxLength ? options.maxLength : Math.max(...lengths);
  const batchSize = examples.length;
  const inputIds = new Int32Array(batchSize * seqLen).fill(options.padTokenId);
  const attentionMask = new Int32Array(batchSize * seqLen);
  const labels = new Int32Array(batchSize * seqLen).fill(IGNORE_INDEX);
  examples.forEach((example, b) => {
    const row = b * seqLen;
    for (let t = 0; t < lengths[b]; t++) {
      inputIds[row + t] = example.inputIds[t];
      attentionMask[row + t] = 1;
      if (!seq2seq) labels[row + t] = example.labels[t];
    }
  });
  if (seq2seq)
    return { batchSize, seqLen, inputIds, attentionMask, decoder: targets(examples, options) };
  return { batchSize, seqLen, inputIds, attentionMask, labels };
}

/** The seq2seq targets: each row's labels cut at maxLength, padded with -100 to the longest. */
function targets(
  examples: readonly TokenExample[],
  options: CollateOptions,
): { seqLen: number; labels: Int32Array } {
  const lengths = examples.map((e) => Math.min(e.labels.length, options.maxLength));
  const seqLen = options.padToMaxLength ? options.maxLength : Math.max(...lengths);
  const labels = new Int32Array(examples.length * seqLen).fill(IGNORE_INDEX);
  examples.forEach((e, b) => {
    for (let t = 0; t < lengths[b]; t++) labels[b * seqLen + t] = e.labels[t];
  });
  return { seqLen, labels };
}

/** Splits examples into consecutive groups of batchSize (the last may be smaller unless dropLast). */
export function groupIntoBatches<T>(
  items: readonly T[],
  batchSize: number,
  dropLast = false,
): T[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  }
  const groups: T[][] = [];
  for (let i = 0; i < items.length; i += batchSize) {
    const group = items.slice(i, i + batchSize);
    if (group.length < batchSize && dropLast) break;
    groups.push(group);
  }
  return groups;
}
