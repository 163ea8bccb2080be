// --quantize after an init or an estimation: re-stores the model's linear weights as int8 / nf4 and
// reports what it cost (bytes, and the logits error on the start of one batch against the float
// weights).

import { DEFAULT_LOGITS_CHUNK_BYTES } from "../../models/lm-head.js";
import type { Batch, CausalLM } from "../../models/model.js";
import type { QuantizeKind } from "../../models/weights.js";
import { formatBytes } from "../../tensor/heap.js";

/**
 * Quantizes the model's linear weights and logs the logits error against the float weights it had
 * (max |diff| / max |float logits|): the cost of a quantized base. Measured on the first tokens of
 * `batch`'s first row whose logits fit `logitsBytes` (forward() returns them whole: at 4 x 1024
 * tokens and a 128k vocabulary that would be 2 GiB of the heap).
 */
export async function quantizeAndReport(
  model: CausalLM,
  kind: QuantizeKind,
  batch: Batch,
  quiet: boolean,
  logitsBytes: number = DEFAULT_LOGITS_CHUNK_BYTES,
): Promise<number> {
  const tokens = Math.max(1, Math.floor(logitsBytes / (4 * model.vocabSize)));
  const probe = firstTokens(batch, tokens);
  const before = await logitsOf(model, probe);
  const floatBytes = model.linearWeightBytes();
  model.quantizeLinears(kind);
  const after = await logitsOf(model, probe);
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < before.length; i++) {
    diff = Math.max(diff, Math.abs(after[i] - before[i]));
    ref = Math.max(ref, Math.abs(before[i]));
  }
  const error = ref > 0 ? diff / ref : diff;
  if (!quiet) {
    const bytes = model.linearWeightBytes();
    process.stderr.write(
      `quantized linear weights to ${kind}: ${formatBytes(floatBytes.heap)} -> ${formatBytes(bytes.heap + bytes.offHeap)} ` +
        `(+ ${formatBytes(bytes.scratch)} f32 scratch); logits max rel error vs float ${error.toExponential(2)} ` +
        `(first ${probe.decoder?.seqLen ?? probe.seqLen} tokens of one row)\n`,
    );
  }
  return error;
}

/**
 * Row 0 of `batch`, its first `tokens` positions (causal: their logits are those of the whole row;
 * an encoder-decoder batch keeps its encoder input whole and cuts the decoder targets).
 */
function firstTokens(batch: Batch, tokens: number): Batch {
  const T = batch.seqLen;
  const mask = batch.attentionMask;
  if (batch.decoder !== undefined) {
    const Td = Math.min(batch.decoder.seqLen, tokens);
    return {
      batchSize: 1,
      seqLen: T,
      inputIds: batch.inputIds.slice(0, T),
      ...(mask !== undefined && { attentionMask: mask.slice(0, T) }),
      decoder: { seqLen: Td, labels: batch.decoder.labels.slice(0, Td) },
    };
  }
  const n = Math.min(T, tokens);
  return {
    batchSize: 1,
    seqLen: n,
    inputIds: batch.inputIds.slice(0, n),
    ...(mask !== undefined && { attentionMask: mask.slice(0, n) }),
    ...(batch.labels !== undefined && { labels: batch.labels.slice(0, n) }),
  };
}

/** The logits of `batch` on the host (a download on a deferred engine). */
async function logitsOf(model: CausalLM, batch: Batch): Promise<Float32Array> {
  const logits = model.forward(batch);
  await model.kernels.download(logits);
  return logits.toArray();
}

/** A fixed 1 x 16 batch of spread-out token ids, for the logits error when no data was given. */
export function probeBatch(model: CausalLM): Batch {
  const inputIds = Int32Array.from({ length: 16 }, (_, i) => (i * 7919 + 1) % model.vocabSize);
  return { batchSize: 1, seqLen: 16, inputIds, labels: inputIds.slice() };
}
