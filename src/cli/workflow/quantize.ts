// --quantize after an init or an estimation: re-stores the model's linear weights as int8 / nf4 and
// reports what it cost (bytes, and the logits error on one batch against the float weights).

import type { Batch, CausalLM } from "../../models/model.js";
import type { QuantizeKind } from "../../models/weights.js";
import { formatBytes } from "../../tensor/heap.js";

/**
 * Quantizes the model's linear weights and logs the logits error of `batch` against the float
 * weights it had (max |diff| / max |float logits|): the cost of a quantized base.
 */
export async function quantizeAndReport(
  model: CausalLM,
  kind: QuantizeKind,
  batch: Batch,
  quiet: boolean,
): Promise<number> {
  const before = await logitsOf(model, batch);
  const floatBytes = model.linearWeightBytes();
  model.quantizeLinears(kind);
  const after = await logitsOf(model, batch);
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
        `(+ ${formatBytes(bytes.scratch)} f32 scratch); logits max rel error vs float ${error.toExponential(2)}\n`,
    );
  }
  return error;
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
