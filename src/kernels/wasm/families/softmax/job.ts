// The softmax family's jobs: the attention softmax rows (sm_fwd, sm_bwd, sm_bwd_set) and the
// cross-entropy rows (ce_row and the accessors), with their argument layouts (emit.ts for the
// generated functions). Chunk c covers rows [c rowsPerChunk, ...).

import { defineArgs } from "../../args.js";
import type { JobFunction, PoolJob } from "../../pool-job.js";
import type { ThreadScratchSpec } from "../../scratch.js";

/** The most batch entries whose key lengths fit in the control block (more: the reference). */
export const MAX_KEY_LENGTHS = 32768;

/** Softmax rows of length tk: probs (B, H, Tq, Tk) from scores, or its backward. */
const SOFTMAX_ARGS = defineArgs({
  /** 0: forward, 1: backward accumulating into dst (dScores), 2: backward overwriting it */
  dir: "i32",
  /** forward: scores; backward: probs */
  src: "ptr",
  dst: "ptr",
  /** backward: dProbs */
  aux: "ptr",
  rows: "i32",
  heads: "i32",
  tq: "i32",
  tk: "i32",
  scale: "f32",
  causal: "bool",
  hasKeyLengths: "bool",
  rowsPerChunk: "i32",
  /** per batch entry: keys visible (clamped to [0, tk]), when hasKeyLengths */
  keyLengths: ["i32", MAX_KEY_LENGTHS],
});
type SoftmaxSpec = typeof SOFTMAX_ARGS.spec;

/** Runs thread `thread`'s chunks of a softmax job. Self-contained (shipped as source). */
const softmaxThreadJob: JobFunction<SoftmaxSpec> = (ex, _c, _f, _L, _t, forEachChunk, args) => {
  const { dir, src, dst, aux, rows, heads, tq, tk, scale, causal, hasKeyLengths } = args;
  const { rowsPerChunk: perChunk, keyLengths } = args;
  const backward = dir !== 0;
  const fwd = ex.sm_fwd;
  const bwd = dir === 2 ? ex.sm_bwd_set : ex.sm_bwd;
  forEachChunk((c) => {
    const r1 = Math.min(rows, (c + 1) * perChunk);
    for (let r = c * perChunk; r < r1; r++) {
      const off = r * tk * 4;
      if (backward) {
        bwd(dst + off, src + off, aux + off, tk, scale);
        continue;
      }
      const bi = Math.floor(r / (heads * tq));
      const i = r % tq;
      const keyLimit = hasKeyLengths ? Math.max(0, Math.min(tk, keyLengths[bi])) : tk;
      const visible = causal ? Math.max(0, Math.min(keyLimit, i + tk - tq + 1)) : keyLimit;
      fwd(src + off, dst + off, visible, tk, scale);
    }
  });
};

export const SOFTMAX_JOB: PoolJob<SoftmaxSpec> = {
  name: "attentionSoftmax",
  args: SOFTMAX_ARGS,
  run: softmaxThreadJob,
};

/** Cross-entropy rows of logits (rows, vocab); targets validated by the caller beforehand. */
const CROSS_ENTROPY_ARGS = defineArgs({
  logits: "ptr",
  /** 0: no gradient */
  dLogits: "ptr",
  targets: "ptr",
  losses: "ptr",
  rows: "i32",
  vocab: "i32",
  ignoreIndex: "i32",
  gradScale: "f32",
  rowsPerChunk: "i32",
});
type CrossEntropySpec = typeof CROSS_ENTROPY_ARGS.spec;

/**
 * Runs thread `thread`'s chunks of a cross-entropy job; the row statistics of ce_row go to the
 * thread's `tile` scratch. Self-contained (shipped as source).
 */
const crossEntropyThreadJob: JobFunction<CrossEntropySpec, ThreadScratchSpec> = (
  ex,
  _ctl,
  _ctlF32,
  _layout,
  _thread,
  forEachChunk,
  args,
  scratch,
) => {
  const { logits, dLogits, targets, losses, rows, vocab, ignoreIndex, gradScale } = args;
  const perChunk = args.rowsPerChunk;
  const stats = scratch.tile;
  forEachChunk((c) => {
    const r1 = Math.min(rows, (c + 1) * perChunk);
    for (let r = c * perChunk; r < r1; r++) {
      const x = logits + r * vocab * 4;
      const d = dLogits === 0 ? 0 : dLogits + r * vocab * 4;
      const t = ex.ld_i32(targets + 4 * r);
      if (t === ignoreIndex) {
        ex.st_f32(losses + 4 * r, 0);
        if (d !== 0) ex.sm_fwd(x, d, 0, vocab, 1); // no visible entry: zeros
        continue;
      }
      const xt = ex.ld_f32(x + 4 * t); // read first: with d == x (in place) ce_row overwrites it
      ex.ce_row(x, d, vocab, gradScale, stats);
      const max = ex.ld_f32(stats);
      const sum = ex.ld_f64(stats + 8);
      ex.st_f32(losses + 4 * r, max + Math.log(sum) - xt);
      if (d !== 0) ex.st_f32(d + 4 * t, ex.ld_f32(d + 4 * t) - gradScale);
    }
  });
};

export const CROSS_ENTROPY_JOB: PoolJob<CrossEntropySpec, ThreadScratchSpec> = {
  name: "crossEntropy",
  args: CROSS_ENTROPY_ARGS,
  run: crossEntropyThreadJob,
};
