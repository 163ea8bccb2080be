// --quantize's report (quantizeAndReport, cli/workflow/quantize.ts): the logits error of the
// quantized base is measured on the first tokens of one row, as many as fit the logits bound
// (forward() returns the logits whole: 2 GiB at 4 x 1024 tokens and a 128k vocabulary). Checked on
// a tiny model with a bound of 3 tokens' logits: every forward it runs is 1 x 3, and the error it
// returns is the one computed here from the whole batch's logits (row 0, positions 0-2) before
// and after quantizing, on a second copy of the model. The same on T5, whose batch keeps its
// encoder input whole and cuts its decoder targets.

import { join } from "node:path";
import { expect, test } from "vitest";
import { quantizeAndReport } from "../../src/cli/workflow/quantize.js";
import { createKernels } from "../../src/kernels/index.js";
import { type Batch, loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import { maxRelDiff } from "../helpers/allclose.js";
import { MODEL_FIXTURES, readModelFixture } from "../helpers/model-fixtures.js";

test.each(["llama-gqa", "t5"])(
  "%s: the quantization error on the first tokens that fit the logits bound",
  async (name) => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const dir = join(MODEL_FIXTURES, name);
    const batch = (await readModelFixture(name)).batch;
    // T5: the encoder input stays whole, the decoder targets are cut (its logits are theirs)
    const T = batch.decoder?.seqLen ?? batch.seqLen;
    expect(T).toBeGreaterThan(3);
    const model = await loadModel(dir, { kernels });
    const copy = await loadModel(dir, { kernels });
    try {
      const V = model.vocabSize;
      // the reference: row 0, positions 0-2 of the whole batch's logits, float then nf4
      const prefix = (logits: Float32Array) => logits.slice(0, 3 * V);
      const before = prefix(copy.forward(batch).toArray());
      copy.quantizeLinears("nf4");
      const after = prefix(copy.forward(batch).toArray());
      const want = maxRelDiff(after, before);
      const seen: number[][] = [];
      const forward = model.forward.bind(model);
      model.forward = (b: Batch) => {
        seen.push([b.batchSize, b.seqLen, b.decoder?.seqLen ?? 0]);
        return forward(b);
      };
      const error = await quantizeAndReport(model, "nf4", batch, true, 4 * V * 3 + 4 * V - 1);
      const shape = batch.decoder === undefined ? [1, 3, 0] : [1, batch.seqLen, 3];
      expect(seen).toEqual([shape, shape]);
      expect(error).toBeGreaterThan(0);
      expect(Math.abs(error - want)).toBeLessThanOrEqual(1e-6 * want);
    } finally {
      model.dispose();
      copy.dispose();
      await kernels.dispose();
    }
  },
);
