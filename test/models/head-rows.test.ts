// Which rows the lm_head runs on in lossAndGrads and tokenLosses (decoder-base.ts headLoss), checked against
// PyTorch float64 on both paths:
//   - every label counted (batch-full.json, scripts/fixtures/make_full_batch_grads.py): the head
//     runs on all B*T rows (the last position of each row, ignored by the shift, is too small a
//     share to skip);
//   - the models' own batch (prompt and pad labels -100, make_tiny_models.py): the head runs on
//     the counted rows only, gathered and scattered back.
// A spy on kernels.matmul records the rows of every product of the lm_head weight (the head's
// forward: (rows, C) x (V, C)^T), so each test also proves which path ran. Loss and every
// parameter gradient must match; tokenLosses (forward only) must match a float64 log-softmax of
// forward()'s logits at every position, and PyTorch's mean loss.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { type CausalLM, loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { MODEL_FIXTURES, readModelFixture, relErr } from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

const FIXTURES = MODEL_FIXTURES;
const MODELS = ["llama-gqa", "gpt2"];
const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

describe.each(KERNELS)("lm_head rows in lossAndGrads (%s kernels)", (kernelsName) => {
  let kernels: Kernels;
  beforeAll(async () => {
    kernels = await createKernels(kernelsName, {
      heap: new Heap({ initialBytes: 16 * 2 ** 20 }),
      threads: 2,
    });
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  describe.each(MODELS)("%s", (name) => {
    let model: CausalLM;
    beforeAll(async () => {
      model = await loadModel(join(FIXTURES, name), { kernels });
    });
    afterAll(() => model?.dispose()); // undefined when loading failed (that error is the report)

    const cases = [
      {
        what: "every label counted: the head runs on all rows",
        batchFile: "batch-full.json",
        expectedFile: "expected-full.safetensors",
      },
      {
        what: "prompt and pad labels ignored: the head runs on the counted rows only",
        batchFile: "batch.json",
        expectedFile: "expected.safetensors",
      },
    ];
    test.each(cases)("$what", async ({ batchFile, expectedFile }) => {
      if (!existsSync(join(FIXTURES, name, expectedFile)))
        throw new Error(`fixture ${name}/${expectedFile} missing`);
      const { batch, values } = await readModelFixture(name, batchFile, expectedFile);
      const V = model.config.vocab_size;
      const C =
        (model.config as { hidden_size?: number; n_embd?: number }).hidden_size ??
        (model.config as { n_embd: number }).n_embd;
      const grads = new Map<string, Tensor>();
      for (const [pname, p] of model.params) grads.set(pname, kernels.heap.zeros(p.shape));
      const headRows: number[] = [];
      const original = kernels.matmul;
      (kernels as { matmul: Kernels["matmul"] }).matmul = (out, a, b, opts) => {
        // the head's forward: (rows, C) x (V, C)^T, the lm_head (or tied embedding) weight
        if (
          opts?.transB === true &&
          b.rank === 2 &&
          b.shape[0] === V &&
          b.shape[1] === C &&
          out.shape[out.rank - 1] === V
        ) {
          headRows.push(out.size / V);
        }
        original.call(kernels, out, a, b, opts);
      };
      let result: { loss: number; tokens: number };
      try {
        result = model.lossAndGrads(batch, { paramGrads: grads });
      } finally {
        (kernels as { matmul: Kernels["matmul"] }).matmul = original;
      }
      const R = batch.batchSize * batch.seqLen;
      const full = batchFile === "batch-full.json";
      expect(result.tokens).toBe(full ? R - batch.batchSize : result.tokens);
      expect(headRows).toEqual([full ? R : result.tokens]);
      const wantLoss = (values.get("loss") as Float32Array)[0];
      expect(Math.abs(result.loss - wantLoss) / wantLoss).toBeLessThanOrEqual(1e-5);
      for (const [pname, g] of grads) {
        const want = values.get(`grad.${pname}`);
        expect(want, `fixture gradient of ${pname}`).toBeDefined();
        expect(relErr(g.toArray(), want as Float32Array).rel, `grad ${pname}`).toBeLessThanOrEqual(
          1e-4,
        );
        g.dispose();
      }
    });

    test.each(cases)("tokenLosses (forward only): $what", async ({ batchFile, expectedFile }) => {
      const { batch, values } = await readModelFixture(name, batchFile, expectedFile);
      const V = model.config.vocab_size;
      const R = batch.batchSize * batch.seqLen;
      const headRows: number[] = [];
      const original = kernels.matmul;
      (kernels as { matmul: Kernels["matmul"] }).matmul = (out, a, b, opts) => {
        if (
          out.shape[out.rank - 1] === V &&
          b.rank === 2 &&
          b.shape[0] === V &&
          opts?.transB === true
        )
          headRows.push(out.size / V);
        original.call(kernels, out, a, b, opts);
      };
      let nll: Float32Array;
      try {
        nll = await model.tokenLosses(batch);
      } finally {
        (kernels as { matmul: Kernels["matmul"] }).matmul = original;
      }
      // independent per-position NLL: log-softmax in float64 over model.forward's logits
      const logits = model.forward(batch).toArray(); // (B, T, V)
      const labels = batch.labels as Int32Array;
      let sum = 0;
      let counted = 0;
      for (let r = 0; r < R; r++) {
        const t = r % batch.seqLen;
        const label = t + 1 < batch.seqLen ? labels[r + 1] : -100;
        if (label === -100) {
          expect(nll[r], `position ${r} is ignored`).toBe(0);
          continue;
        }
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]);
        let z = 0;
        for (let v = 0; v < V; v++) z += Math.exp(logits[r * V + v] - max);
        const want = max + Math.log(z) - logits[r * V + label];
        expect(Math.abs(nll[r] - want), `position ${r}`).toBeLessThanOrEqual(1e-5 * (1 + want));
        sum += nll[r];
        counted++;
      }
      expect(headRows).toEqual([batchFile === "batch-full.json" ? R : counted]);
      const wantLoss = (values.get("loss") as Float32Array)[0];
      expect(Math.abs(sum / counted - wantLoss) / wantLoss).toBeLessThanOrEqual(1e-5);
    });
  });
});
