// Which rows the lm_head runs on in lossAndGrads (decoder-base.ts runHead), checked against
// PyTorch float64 on both paths:
//   - every label counted (batch-full.json, scripts/fixtures/make_full_batch_grads.py): the head
//     runs on all B*T rows (the last position of each row, ignored by the shift, is too small a
//     share to skip);
//   - the models' own batch (prompt and pad labels -100, make_tiny_models.py): the head runs on
//     the counted rows only, gathered and scattered back.
// A spy on kernels.matmul records the rows of every product of the lm_head weight (the head's
// forward: (rows, C) x (V, C)^T), so each test also proves which path ran. Loss and every parameter gradient must match.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { createKernels } from "../../src/kernels/index.js";
import { type CausalLM, loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { MODEL_FIXTURES, readModelFixture, relErr } from "../helpers/model-fixtures.js";

const FIXTURES = MODEL_FIXTURES;
const MODELS = ["llama-gqa", "gpt2"];
const KERNELS: KernelsName[] = ["ref", "wasm"];

describe.each(KERNELS)("lm_head rows in lossAndGrads (%s kernels)", (kernelsName) => {
  let kernels: Kernels;
  beforeAll(async () => {
    kernels = await createKernels(kernelsName, { heap: new Heap({ initialBytes: 16 * 2 ** 20 }), threads: 2 });
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  describe.each(MODELS)("%s", (name) => {
    let model: CausalLM;
    beforeAll(async () => {
      model = await loadModel(join(FIXTURES, name), { kernels });
    });
    afterAll(() => model.dispose());

    const cases = [
      { what: "every label counted: the head runs on all rows", batchFile: "batch-full.json", expectedFile: "expected-full.safetensors" },
      { what: "prompt and pad labels ignored: the head runs on the counted rows only", batchFile: "batch.json", expectedFile: "expected.safetensors" },
    ];
    test.each(cases)("$what", async ({ batchFile, expectedFile }) => {
      if (!existsSync(join(FIXTURES, name, expectedFile))) throw new Error(`fixture ${name}/${expectedFile} missing`);
      const { batch, values } = await readModelFixture(name, batchFile, expectedFile);
      const V = model.config.vocab_size;
      const C = (model.config as { hidden_size?: number; n_embd?: number }).hidden_size ?? (model.config as { n_embd: number }).n_embd;
      const grads = new Map<string, Tensor>();
      for (const [pname, p] of model.params) grads.set(pname, kernels.heap.zeros(p.shape));
      const headRows: number[] = [];
      const original = kernels.matmul;
      (kernels as { matmul: Kernels["matmul"] }).matmul = (out, a, b, opts) => {
        // the head's forward: (rows, C) x (V, C)^T, the lm_head (or tied embedding) weight
        if (opts?.transB === true && b.rank === 2 && b.shape[0] === V && b.shape[1] === C && out.shape[out.rank - 1] === V) {
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
        expect(relErr(g.toArray(), want as Float32Array).rel, `grad ${pname}`).toBeLessThanOrEqual(1e-4);
        g.dispose();
      }
    });
  });
});
