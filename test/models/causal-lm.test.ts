// Tiny random HF checkpoints (scripts/fixtures/make_tiny_models.py, make_tiny_archs.py) against
// PyTorch float64:
// logits, the causal-LM loss and the gradient of every parameter; only the requested gradients are
// computed; the adapter hook receives the right gradient; checkpoint and model_type errors.

import { readdirSync, readFileSync } from "node:fs";
import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SafetensorsFile, writeSafetensors } from "../../src/io/safetensors.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import type { LinearAdapter } from "../../src/models/linear.js";
import { type CausalLM, loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import {
  FIXTURE_MODELS,
  MODEL_FIXTURES,
  type ModelFixture,
  readModelFixture,
  relErr,
  SEQ2SEQ_FIXTURE_MODELS,
} from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

const FIXTURES = MODEL_FIXTURES;
const MODELS = FIXTURE_MODELS;
const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

type Expected = ModelFixture;

function expectClose(
  what: string,
  actual: Float32Array,
  expected: Float32Array,
  tol: number,
): void {
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

/** Forward logits, the causal-LM loss and every parameter gradient against PyTorch float64. */
function expectLogitsLossGrads(model: CausalLM, expected: Expected): void {
  const logits = model.forward(expected.batch);
  expectClose("logits", logits.toArray(), expected.values.get("logits") as Float32Array, 1e-5);

  const grads = zeroGrads(model, model.params.keys());
  const { loss, tokens } = model.lossAndGrads(expected.batch, { paramGrads: grads });
  const labels = expected.batch.labels as Int32Array;
  const T = expected.batch.seqLen;
  const counted = labels.filter((l, i) => l !== -100 && i % T !== 0).length;
  expect(tokens).toBe(counted);
  const wantLoss = (expected.values.get("loss") as Float32Array)[0];
  expect(Math.abs(loss - wantLoss) / Math.abs(wantLoss)).toBeLessThanOrEqual(1e-5);
  for (const [pname, g] of grads) {
    expectClose(
      `grad ${pname}`,
      g.toArray(),
      expected.values.get(`grad.${pname}`) as Float32Array,
      1e-4,
    );
    g.dispose();
  }
}

test("the model list is exactly the fixture folders: none skipped, none left out", () => {
  // the encoder-decoder ones are test/models/t5.test.ts's
  expect(readdirSync(FIXTURES).sort()).toEqual([...MODELS, ...SEQ2SEQ_FIXTURE_MODELS].sort());
});

describe.each(KERNELS)("causal LMs vs PyTorch (%s kernels)", (kernelsName) => {
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
    let expected: Expected;
    beforeAll(async () => {
      model = await loadModel(join(FIXTURES, name), { kernels });
      expected = await readModelFixture(name);
    });
    afterAll(() => model?.dispose()); // undefined when loading failed (that error is the report)

    test("parameters are exactly the checkpoint's trainable ones", () => {
      const gradNames = [...expected.values.keys()]
        .filter((k) => k.startsWith("grad."))
        .map((k) => k.slice(5));
      expect([...model.params.keys()].sort()).toEqual(gradNames.sort());
    });

    test("logits, loss and every parameter gradient", () => {
      expectLogitsLossGrads(model, expected);
    });

    // phi3's second batch is longer than original_max_position_embeddings: LongRoPE's long factors
    if (name === "phi3") {
      test("a batch past original_max_position_embeddings", async () => {
        expectLogitsLossGrads(
          model,
          await readModelFixture(name, "batch-long.json", "expected-long.safetensors"),
        );
      });
    }

    test("only the requested gradients are computed, and they accumulate", () => {
      const firstLinear = model.linears()[0];
      // not layer 0's input norm: its gradient needs layer 0's input gradient, skipped otherwise
      const norm = [...model.params.keys()].find((n) =>
        /post_attention_layernorm|ln_2/.test(n),
      ) as string;
      const subset = [firstLinear.weightName, norm];
      const grads = zeroGrads(model, subset);
      let calls = 0;
      const original = kernels.matmul;
      const counting: Kernels["matmul"] = (...args) => {
        calls++;
        original.apply(kernels, args);
      };
      (kernels as { matmul: Kernels["matmul"] }).matmul = counting;
      try {
        model.lossAndGrads(expected.batch);
        const withoutGrads = calls;
        calls = 0;
        model.lossAndGrads(expected.batch, { paramGrads: grads, lossScale: 0.5 });
        model.lossAndGrads(expected.batch, { paramGrads: grads, lossScale: 1.5 });
        expect(calls).toBe(2 * withoutGrads + 2); // one dW GEMM per call, for the one linear asked for
      } finally {
        (kernels as { matmul: Kernels["matmul"] }).matmul = original;
      }
      for (const [pname, g] of grads) {
        const want = (expected.values.get(`grad.${pname}`) as Float32Array).map((x) => 2 * x); // 0.5 + 1.5
        expectClose(`accumulated grad ${pname}`, g.toArray(), want, 1e-4);
        g.dispose();
      }
      expect(() =>
        model.lossAndGrads(expected.batch, {
          paramGrads: new Map([["nope.weight", grads.get(norm) as Tensor]]),
        }),
      ).toThrow(/nope\.weight/);
    });

    test("adapter hook: out += s*inp gets d s = trace(dW) and shifts the logits like W + s*I", () => {
      const square = model
        .linears()
        .find((l) => l.inFeatures === l.outFeatures && l.path !== "lm_head");
      if (square === undefined) throw new Error("fixture has no square linear layer");
      let s = 0;
      let dS = 0;
      const adapter: LinearAdapter = {
        forward(out, inp) {
          kernels.axpy(out, inp, s);
        },
        backward(dInp, dOut, inp) {
          const o = dOut.f32();
          const x = inp.f32();
          for (let i = 0; i < o.length; i++) dS += o[i] * x[i];
          if (dInp !== null) kernels.axpy(dInp, dOut, s);
        },
      };
      model.setAdapter(square.path, adapter);
      try {
        model.lossAndGrads(expected.batch);
        const dW = expected.values.get(`grad.${square.weightName}`) as Float32Array;
        let trace = 0;
        for (let i = 0; i < square.inFeatures; i++) trace += dW[i * square.inFeatures + i];
        expect(Math.abs(dS - trace)).toBeLessThanOrEqual(
          1e-4 * Math.max(...dW.map(Math.abs)) * square.inFeatures,
        );
        s = 0.3;
        const adapted = model.forward(expected.batch).toArray();
        model.setAdapter(square.path, null);
        const w = (model.params.get(square.weightName) as Tensor).f32();
        for (let i = 0; i < square.inFeatures; i++) w[i * square.inFeatures + i] += s;
        const merged = model.forward(expected.batch).toArray();
        for (let i = 0; i < square.inFeatures; i++) w[i * square.inFeatures + i] -= s;
        expectClose("adapter vs merged weight", adapted, merged, 1e-5);
      } finally {
        model.setAdapter(square.path, null);
      }
      expect(() => model.setAdapter("model.nothing", adapter)).toThrow(/model\.nothing/);
    });
  });
});

describe("checkpoint and config errors", () => {
  let dir: string;
  let kernels: Kernels;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loraga-models-"));
    kernels = await createKernels("ref", { heap: new Heap({ initialBytes: 8 * 2 ** 20 }) });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await kernels.dispose();
  });

  async function variant(
    name: string,
    edit: (tensors: Map<string, { shape: number[]; data: Float32Array }>) => void,
  ): Promise<string> {
    const out = join(dir, name);
    await cp(join(FIXTURES, "llama-gqa"), out, { recursive: true });
    const file = await SafetensorsFile.open(join(out, "model.safetensors"));
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [key, entry] of file.entries)
      tensors.set(key, { shape: entry.shape, data: await file.readF32(key) });
    await file.close();
    edit(tensors);
    await writeSafetensors(
      join(out, "model.safetensors"),
      [...tensors].map(([key, t]) => ({
        name: key,
        dtype: "F32" as const,
        shape: t.shape,
        data: t.data,
      })),
    );
    return out;
  }

  test("a missing tensor names the file and the tensor", async () => {
    const out = await variant("missing", (t) => t.delete("model.layers.1.mlp.up_proj.weight"));
    const err = await loadModel(out, { kernels }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain("model.layers.1.mlp.up_proj.weight");
    expect((err as Error).message).toContain(join(out, "model.safetensors"));
    expect((err as Error).message).not.toContain("\n");
  });

  test("a tensor of the wrong shape names the file, the tensor and both shapes", async () => {
    const out = await variant("shape", (t) => {
      t.set("model.layers.0.self_attn.k_proj.weight", {
        shape: [32, 32],
        data: new Float32Array(32 * 32),
      });
    });
    const err = await loadModel(out, { kernels }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      /model\.safetensors.*model\.layers\.0\.self_attn\.k_proj\.weight.*\[32, 32\].*\[16, 32\]/,
    );
    expect(kernels.heap.bytesInUse).toBe(0);
  });

  test("an unknown model_type lists the supported ones", async () => {
    const out = join(dir, "bert");
    await cp(join(FIXTURES, "llama-gqa"), out, { recursive: true });
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    await writeFile(join(out, "config.json"), JSON.stringify({ ...config, model_type: "bert" }));
    const err = await loadModel(out, { kernels }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(
      /"bert".*llama.*qwen2.*mistral.*qwen3.*smollm3.*phi3.*gpt2.*gemma3_text/,
    );
  });
});
