// Kernels.maskOutsideWindow (the reference): which raw scores a sliding-window layer hides, for a full (B*H, T, T) block
// and for a block of new queries at the end of cached keys (KV-cache decoding), against
// transformers' rule (masking_utils.sliding_window_overlay: key j visible to the query at
// position p when j > p - window), written out here entry by entry.

import { describe, expect, test } from "vitest";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { Heap } from "../../src/tensor/heap.js";

describe("maskOutsideWindow", () => {
  test.each([
    { M: 2, Tq: 6, Tk: 6, window: 3 }, // training: queries and keys are the same positions
    { M: 3, Tq: 2, Tk: 7, window: 4 }, // decoding: 2 new queries after 5 cached keys
    { M: 1, Tq: 4, Tk: 4, window: 9 }, // a window longer than the sequence hides nothing
    { M: 1, Tq: 5, Tk: 5, window: 1 }, // each query sees only itself
  ])("M $M, Tq $Tq, Tk $Tk, window $window", ({ M, Tq, Tk, window }) => {
    const heap = new Heap();
    const scores = heap.tensor([M, Tq, Tk]);
    const values = scores.f32();
    for (let i = 0; i < values.length; i++) values[i] = i + 1;
    createRefKernels(heap).maskOutsideWindow(scores, window);
    const got = scores.toArray();
    for (let m = 0; m < M; m++) {
      for (let i = 0; i < Tq; i++) {
        const p = Tk - Tq + i; // the query's position
        for (let j = 0; j < Tk; j++) {
          const at = (m * Tq + i) * Tk + j;
          if (j > p - window) expect(got[at], `kept (${m}, ${i}, ${j})`).toBe(at + 1);
          else expect(got[at], `hidden (${m}, ${i}, ${j})`).toBeLessThan(-1e29);
        }
      }
    }
    scores.dispose();
  });
});
