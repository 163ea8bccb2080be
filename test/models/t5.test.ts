// Tiny random T5 checkpoints (scripts/fixtures/make_tiny_t5.py: T5 v1.0 with ReLU and a tied,
// rescaled head; T5 v1.1 with gated-gelu and its own lm_head) against PyTorch float64: logits, the
// seq2seq loss and the gradient of every parameter on every engine; only the requested gradients
// are computed; batch checks; the relative position buckets against T5's formula.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseModelConfig } from "../../src/io/hf-config.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { relativeBuckets } from "../../src/models/biased-attention.js";
import { type CausalLM, loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import {
  MODEL_FIXTURES,
  type ModelFixture,
  readModelFixture,
  relErr,
  SEQ2SEQ_FIXTURE_MODELS,
} from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

function expectClose(what: string, actual: Float32Array, expected: Float32Array, tol: number) {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const { rel, at } = relErr(actual, expected);
  expect(
    rel,
    `${what}: rel err ${rel.toExponential(2)} at ${at} (got ${actual[at]}, want ${expected[at]})`,
  ).toBeLessThanOrEqual(tol);
}

function zeroGrads(model: CausalLM, names: Iterable<string>): Map<string, Tensor> {
  const grads = new Map<string, Tensor>();
  for (const name of names) {
    const p = model.params.get(name);
    if (p === undefined) throw new Error(`no parameter ${name}`);
    grads.set(name, model.kernels.heap.zeros(p.shape));
  }
  return grads;
}

describe("T5 relative position buckets", () => {
  // T5Attention._relative_position_bucket by hand for 8 buckets, max_distance 6 (the fixtures'):
  // bidirectional: 4 per side, exact below 2, then 2 + floor(log(n/2) / log(3) * 2), at most 3
  test("bidirectional and causal, small and logarithmic distances", () => {
    const bi = relativeBuckets(1, 8, true, 8, 6); // query 0, keys 0..7: relative 0..7 (after)
    expect([...bi]).toEqual([0, 5, 6, 6, 7, 7, 7, 7]);
    const before = relativeBuckets(8, 1, true, 8, 6); // key 0, queries 0..7: relative 0..-7
    expect([...before]).toEqual([0, 1, 2, 2, 3, 3, 3, 3]);
    const causal = relativeBuckets(8, 1, false, 8, 6); // 8 buckets one-sided: exact below 4
    // n >= 4: 4 + floor(log(n/4) / log(1.5) * 4), at most 7: n=4 -> 4, 5 -> 6, 6 -> 8 -> 7
    expect([...causal]).toEqual([0, 1, 2, 3, 4, 6, 7, 7]);
    expect([...relativeBuckets(1, 3, false, 8, 6)]).toEqual([0, 0, 0]); // keys after: bucket 0
  });
});

describe("T5 config", () => {
  test("defaults, gated-gelu, and the head rescale rule", () => {
    const v10 = parseModelConfig({ model_type: "t5" });
    if (v10.model_type !== "t5" || !v10.recognized) throw new Error("not parsed as t5");
    expect(v10.d_model).toBe(512);
    expect(v10.num_decoder_layers).toBe(6);
    expect(v10.dense_act_fn).toBe("relu");
    expect(v10.is_gated_act).toBe(false);
    expect(v10.scale_decoder_outputs).toBe(true);
    expect(v10.decoder_start_token_id).toBe(0);
    const v11 = parseModelConfig({
      model_type: "t5",
      feed_forward_proj: "gated-gelu",
      tie_word_embeddings: false,
      num_layers: 3,
    });
    if (v11.model_type !== "t5" || !v11.recognized) throw new Error("not parsed as t5");
    expect(v11.dense_act_fn).toBe("gelu_new");
    expect(v11.is_gated_act).toBe(true);
    expect(v11.scale_decoder_outputs).toBe(false);
    expect(v11.num_decoder_layers).toBe(3);
    // transformers 5 writes tie_word_embeddings true and the rescale flag separately
    const v5 = parseModelConfig({
      model_type: "t5",
      tie_word_embeddings: true,
      scale_decoder_outputs: false,
    });
    expect(v5.model_type === "t5" && v5.recognized && v5.scale_decoder_outputs).toBe(false);
    expect(() => parseModelConfig({ model_type: "t5", feed_forward_proj: "gated-swish" })).toThrow(
      /feed_forward_proj/,
    );
  });
});

describe.each(KERNELS)("T5 vs PyTorch (%s kernels)", (kernelsName) => {
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

  describe.each(SEQ2SEQ_FIXTURE_MODELS)("%s", (name) => {
    let model: CausalLM;
    let expected: ModelFixture;
    beforeAll(async () => {
      model = await loadModel(join(MODEL_FIXTURES, name), { kernels });
      expected = await readModelFixture(name);
    });
    afterAll(() => model?.dispose());

    test("parameters are exactly the checkpoint's trainable ones", () => {
      const gradNames = [...expected.values.keys()]
        .filter((k) => k.startsWith("grad."))
        .map((k) => k.slice(5));
      expect([...model.params.keys()].sort()).toEqual(gradNames.sort());
    });

    test("logits, loss and every parameter gradient", async () => {
      const logits = model.forward(expected.batch);
      const want = expected.values.get("logits") as Float32Array;
      expectClose("logits", logits.toArray(), want, 1e-5);
      const grads = zeroGrads(model, model.params.keys());
      const { loss, tokens } = model.lossAndGrads(expected.batch, { paramGrads: grads });
      const labels = expected.batch.decoder?.labels as Int32Array;
      expect(tokens).toBe(labels.filter((l) => l !== -100).length);
      const wantLoss = (expected.values.get("loss") as Float32Array)[0];
      expect(Math.abs(loss - wantLoss) / wantLoss).toBeLessThanOrEqual(1e-5);
      for (const [pname, g] of grads) {
        const want = expected.values.get(`grad.${pname}`) as Float32Array;
        expectClose(`grad ${pname}`, g.toArray(), want, 1e-4);
        g.dispose();
      }
      const nll = await model.tokenLosses(expected.batch);
      let sum = 0;
      for (const x of nll) sum += x;
      expect(Math.abs(sum / tokens - wantLoss) / wantLoss).toBeLessThanOrEqual(1e-5);
    });

    test("only the requested gradients, accumulated; a LoRA-style subset skips the rest", () => {
      const names = [
        "decoder.block.1.layer.1.EncDecAttention.v.weight",
        "encoder.block.0.layer.0.SelfAttention.q.weight",
        "encoder.block.1.layer.0.layer_norm.weight",
      ];
      const grads = zeroGrads(model, names);
      model.lossAndGrads(expected.batch, { paramGrads: grads, lossScale: 0.5 });
      model.lossAndGrads(expected.batch, { paramGrads: grads, lossScale: 1.5 });
      for (const [pname, g] of grads) {
        const want = (expected.values.get(`grad.${pname}`) as Float32Array).map((x) => 2 * x);
        expectClose(`accumulated grad ${pname}`, g.toArray(), want, 1e-4);
        g.dispose();
      }
    });

    test("batch errors name the problem", () => {
      const { decoder, ...encoderOnly } = expected.batch;
      expect(() => model.forward(encoderOnly)).toThrow(/batch\.decoder/);
      const labels = Int32Array.from(decoder?.labels ?? []);
      labels[2] = 9999;
      const bad = { ...encoderOnly, decoder: { seqLen: decoder?.seqLen ?? 0, labels } };
      expect(() => model.lossAndGrads(bad)).toThrow(/outside the vocabulary/);
      expect(() => model.createCache(1, 4)).toThrow(/not supported/);
    });
  });
});
