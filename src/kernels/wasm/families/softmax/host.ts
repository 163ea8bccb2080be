// The softmax family: attentionSoftmax, its backward and crossEntropy on the pool (emit.ts,
// job.ts). Fallbacks to the reference: an output that partially overlaps an input; more batch
// entries with key lengths than the control block holds (MAX_KEY_LENGTHS); a vocabulary of 0.

import type { Tensor } from "../../../../tensor/tensor.js";
import {
  checkAttentionSoftmax,
  checkAttentionSoftmaxBackward,
  checkBackwardOptions,
  checkCrossEntropy,
} from "../../../validate.js";
import { rowsPerChunk, threadsFor } from "../../chunking.js";
import type { FamilyContext, WasmFamily } from "../../family.js";
import { canRunInPlace } from "../../overlap.js";
import { emitSoftmax } from "./emit.js";
import { CROSS_ENTROPY_JOB, MAX_KEY_LENGTHS, SOFTMAX_JOB } from "./job.js";

type Provided = "attentionSoftmax" | "attentionSoftmaxBackward" | "crossEntropy";

export const softmaxFamily: WasmFamily<Provided> = {
  name: "softmax",
  provides: ["attentionSoftmax", "attentionSoftmaxBackward", "crossEntropy"],
  emit: emitSoftmax,
  jobs: [SOFTMAX_JOB, CROSS_ENTROPY_JOB],
  create: ({ pool, ref, config }: FamilyContext) => {
    /**
     * Runs softmax rows of length tk over `rows` rows. dir (SOFTMAX_ARGS.dir): 0 forward,
     * 1 backward (accumulating into dst), 2 backward overwriting dst.
     */
    function softmaxRows(
      dir: 0 | 1 | 2,
      ptrs: { src: number; dst: number; aux: number },
      dims: { rows: number; heads: number; tq: number; tk: number },
      scale: number,
      causal: boolean,
      keyLengths: Tensor | undefined,
    ): void {
      const { rows, tk } = dims;
      if (rows === 0 || tk === 0) return;
      const perChunk = rowsPerChunk(tk);
      pool.dispatch(
        SOFTMAX_JOB,
        {
          dir,
          ...ptrs,
          ...dims,
          scale,
          causal,
          hasKeyLengths: keyLengths !== undefined,
          rowsPerChunk: perChunk,
          keyLengths: keyLengths === undefined ? null : keyLengths.i32(),
        },
        threadsFor(rows * tk, config.threads),
        Math.ceil(rows / perChunk),
      );
    }

    return {
      crossEntropy(losses, dLogits, logits, targets, options = {}) {
        const ignoreIndex = options.ignoreIndex ?? -100;
        const gradScale = options.gradScale ?? 1;
        const { rows, vocab } = checkCrossEntropy(
          losses,
          dLogits,
          logits,
          targets,
          ignoreIndex,
          gradScale,
        );
        if (vocab === 0) return ref.crossEntropy(losses, dLogits, logits, targets, options);
        // targets first, as the reference does: a bad one throws before anything is written
        const t = targets.i32();
        let counted = 0;
        for (let n = 0; n < rows; n++) {
          if (t[n] === ignoreIndex) continue;
          if (t[n] < 0 || t[n] >= vocab) {
            throw new RangeError(
              `crossEntropy: targets[${n}] = ${t[n]} is outside [0, ${vocab}) and is not the ignore index ${ignoreIndex}`,
            );
          }
          counted++;
        }
        if (rows === 0) return 0;
        const perChunk = rowsPerChunk(vocab);
        pool.dispatch(
          CROSS_ENTROPY_JOB,
          {
            logits: logits.ptr,
            dLogits: dLogits === null ? 0 : dLogits.ptr,
            targets: targets.ptr,
            losses: losses.ptr,
            rows,
            vocab,
            ignoreIndex,
            gradScale,
            rowsPerChunk: perChunk,
          },
          threadsFor(rows * vocab, config.threads),
          Math.ceil(rows / perChunk),
        );
        return counted;
      },
      attentionSoftmax(probs, scores, options) {
        const { batch, heads, tq, tk } = checkAttentionSoftmax(
          probs,
          scores,
          options.scale,
          options.keyLengths,
        );
        const kl = options.keyLengths;
        if (!canRunInPlace([probs], [scores]) || (kl !== undefined && batch > MAX_KEY_LENGTHS)) {
          ref.attentionSoftmax(probs, scores, options);
          return;
        }
        softmaxRows(
          0,
          { src: scores.ptr, dst: probs.ptr, aux: 0 },
          { rows: batch * heads * tq, heads, tq, tk },
          options.scale,
          options.causal === true,
          kl,
        );
      },
      attentionSoftmaxBackward(dScores, probs, dProbs, scale, options) {
        const { rows, cols } = checkAttentionSoftmaxBackward(dScores, probs, dProbs, scale);
        const accumulate = checkBackwardOptions("attentionSoftmaxBackward", options);
        if (!canRunInPlace([dScores], [probs, dProbs])) {
          ref.attentionSoftmaxBackward(dScores, probs, dProbs, scale, options);
          return;
        }
        softmaxRows(
          accumulate ? 1 : 2,
          { src: probs.ptr, dst: dScores.ptr, aux: dProbs.ptr },
          { rows, heads: 1, tq: 1, tk: cols },
          scale,
          false,
          undefined,
        );
      },
    };
  },
};
