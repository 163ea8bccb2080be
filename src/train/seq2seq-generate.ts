// Greedy generation for an encoder-decoder model (t5): the prompt feeds the encoder, the decoder
// starts from decoder_start_token_id (the model applies it: Batch.decoder) and appends the argmax
// token of its last position until EOS or maxNewTokens, as transformers' generate(do_sample=False,
// num_beams=1) does. Without a KV cache: each step runs the whole model on the prompt and the
// tokens so far (the cost grows with the square of the output length; fine for label words and
// short answers). Ties pick the lowest token id (torch.argmax).
// Contract: returns each row's new tokens, its EOS included; the model's adapters apply.
// Asynchronous because a deferred engine (webgpu) delivers each step's logits by a download.

import type { CausalLM } from "../models/model.js";

/** Greedy continuations of every prompt (encoder input); padTokenId pads the encoder batch. */
export async function generateSeq2Seq(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  options: { maxNewTokens: number; eos: ReadonlySet<number>; padTokenId: number },
): Promise<number[][]> {
  const B = prompts.length;
  const out: number[][] = prompts.map(() => []);
  if (B === 0 || options.maxNewTokens === 0) return out;
  const Te = Math.max(...prompts.map((p) => p.length));
  const inputIds = new Int32Array(B * Te).fill(options.padTokenId);
  const attentionMask = new Int32Array(B * Te);
  prompts.forEach((p, b) => {
    p.forEach((id, t) => {
      inputIds[b * Te + t] = id;
      attentionMask[b * Te + t] = 1;
    });
  });
  const done = new Array<boolean>(B).fill(false);
  const V = model.vocabSize;
  for (let t = 0; t < options.maxNewTokens && done.includes(false); t++) {
    // labels (B, t+1): the tokens so far and a placeholder at t, whose logits (from the decoder
    // inputs start, out[0..t-1]) do not depend on it
    const Td = t + 1;
    const labels = new Int32Array(B * Td).fill(options.padTokenId);
    out.forEach((row, b) => {
      row.forEach((id, i) => {
        labels[b * Td + i] = id;
      });
    });
    const decoder = { seqLen: Td, labels };
    const logits = model.forward({ batchSize: B, seqLen: Te, inputIds, attentionMask, decoder });
    await model.kernels.download(logits);
    const data = logits.f32(); // (B, Td, V)
    for (let b = 0; b < B; b++) {
      if (done[b]) continue;
      const row = (b * Td + t) * V;
      let best = 0;
      for (let v = 1; v < V; v++) if (data[row + v] > data[row + best]) best = v;
      out[b].push(best);
      if (options.eos.has(best)) done[b] = true;
    }
  }
  return out;
}
