// LossAndGradsOptions.inputsEmbedsGrad and the skipped layer-0 input gradient (PyTorch autograd
// semantics), on the tiny HF checkpoints of scripts/fixtures/make_tiny_models.py:
//   - d loss / d inputs_embeds against PyTorch's float64 gradients through identities: scattered
//     over the input ids it is the embedding gradient of an untied Llama; summed over the batch at
//     each position it is GPT-2's wpe gradient; scaled by lossScale; overwritten, not accumulated;
//   - the first layer's input gradient is skipped exactly when nothing needs it (an adapter on
//     layer 0's q/k/v or c_attn sees dInp === null), and asking for layer 0's input-norm gradient
//     alone still gets PyTorch's value;
//   - LoRA adapter gradients are the same whether or not the input gradient is computed;
//   - a wrong inputsEmbedsGrad is rejected with the option and the shapes named.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import type { LinearAdapter } from "../../src/models/linear.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { LoraConfig } from "../../src/peft/config.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";
import {
  MODEL_FIXTURES,
  type ModelFixture,
  readModelFixture,
  relErr,
} from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

const FIXTURES = MODEL_FIXTURES;
const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

type Fixture = ModelFixture;

function fixtureGrad(f: Fixture, param: string): Float32Array {
  const g = f.values.get(`grad.${param}`);
  if (g === undefined) throw new Error(`fixture has no grad.${param}`);
  return g;
}

function expectClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const { rel, at } = relErr(actual, expected);
  expect(
    rel,
    `${what}: rel err ${rel.toExponential(2)} at ${at} (got ${actual[at]}, want ${expected[at]})`,
  ).toBeLessThanOrEqual(tol);
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** (V, C): row ids[r] += g[r] for every row r of g (R, C) — the embedding's backward, in plain JS. */
function scatterRows(g: Float32Array, ids: Int32Array, V: number, C: number): Float64Array {
  const out = new Float64Array(V * C);
  for (let r = 0; r < ids.length; r++)
    for (let c = 0; c < C; c++) out[ids[r] * C + c] += g[r * C + c];
  return out;
}

/** (P, C): row t += g[b, t] for every batch row b — wpe's backward for positions 0..T-1, in plain JS. */
function sumOverBatch(g: Float32Array, B: number, T: number, P: number, C: number): Float64Array {
  const out = new Float64Array(P * C);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let c = 0; c < C; c++) out[t * C + c] += g[(b * T + t) * C + c];
  return out;
}

/** Wraps layer `path`'s adapter (or none) so that each backward call records whether dInp was given. */
function watchInputGrad(
  model: CausalLM,
  path: string,
  inner: LinearAdapter | null,
): { calls: boolean[] } {
  const calls: boolean[] = [];
  const spy: LinearAdapter = {
    forward(out, inp) {
      inner?.forward(out, inp);
    },
    backward(dInp, dOut, inp) {
      calls.push(dInp !== null);
      inner?.backward(dInp, dOut, inp);
    },
  };
  model.setAdapter(path, spy);
  return { calls };
}

/** Hidden size: the width of the token embedding (V, C). */
function hiddenOf(model: CausalLM): number {
  const embed =
    model.params.get("model.embed_tokens.weight") ?? model.params.get("transformer.wte.weight");
  if (embed === undefined) throw new Error("no token embedding");
  return embed.shape[1];
}

/** Layer-0 and layer-1 attention input projections of a fixture model, by architecture. */
function inputProjections(model: CausalLM): { layer0: string[]; layer1: string[] } {
  const paths = model.linears().map((l) => l.path);
  const pick = (layer: number) =>
    paths.filter((p) =>
      new RegExp(`\\.${layer}\\.(self_attn\\.(q|k|v)_proj|attn\\.c_attn)$`).test(p),
    );
  return { layer0: pick(0), layer1: pick(1) };
}

describe.each(KERNELS)(
  "inputsEmbedsGrad and the skipped layer-0 input gradient (%s kernels)",
  (kernelsName) => {
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

    const load = async (name: string): Promise<{ model: CausalLM; fixture: Fixture }> => ({
      model: await loadModel(join(FIXTURES, name), { kernels }),
      fixture: await readModelFixture(name),
    });

    const inputsEmbedsGradOf = (model: CausalLM, batch: Batch): Tensor =>
      kernels.heap.tensor([batch.batchSize, batch.seqLen, hiddenOf(model)]);

    test.each(["llama-gqa", "mistral"])(
      "%s (untied): inputs_embeds gradient scattered over the ids = PyTorch's embed_tokens gradient",
      async (name) => {
        const { model, fixture } = await load(name);
        const { batch } = fixture;
        const [V, C] = (model.params.get("model.embed_tokens.weight") as Tensor).shape;
        const grad = kernels.heap.tensor([batch.batchSize, batch.seqLen, C]);
        try {
          grad.fill(7); // overwritten, not accumulated
          model.lossAndGrads(batch, { inputsEmbedsGrad: grad, lossScale: 0.5 });
          model.lossAndGrads(batch, { inputsEmbedsGrad: grad, lossScale: 0.5 });
          const want = fixtureGrad(fixture, "model.embed_tokens.weight").map((x) => 0.5 * x);
          expectClose(
            "scatter(inputsEmbedsGrad)",
            scatterRows(grad.toArray(), batch.inputIds, V, C),
            want,
            1e-4,
          );
        } finally {
          grad.dispose();
          model.dispose();
        }
      },
    );

    test("gpt2: inputs_embeds gradient summed over the batch per position = PyTorch's wpe gradient", async () => {
      const { model, fixture } = await load("gpt2");
      const { batch } = fixture;
      const [P, C] = (model.params.get("transformer.wpe.weight") as Tensor).shape;
      const grad = kernels.heap.tensor([batch.batchSize, batch.seqLen, C]);
      try {
        grad.fill(-3);
        model.lossAndGrads(batch, { inputsEmbedsGrad: grad, lossScale: 2 });
        const want = fixtureGrad(fixture, "transformer.wpe.weight").map((x) => 2 * x);
        expect(maxAbs(want)).toBeGreaterThan(0);
        expectClose(
          "sum_b inputsEmbedsGrad[b, t]",
          sumOverBatch(grad.toArray(), batch.batchSize, batch.seqLen, P, C),
          want,
          1e-4,
        );
      } finally {
        grad.dispose();
        model.dispose();
      }
    });

    test.each(["llama-gqa", "qwen2", "gpt2", "gemma3"])(
      "%s: layer 0's input gradient is skipped exactly when nothing needs it",
      async (name) => {
        const { model, fixture } = await load(name);
        const { batch } = fixture;
        const { layer0, layer1 } = inputProjections(model);
        expect(layer0.length).toBe(name === "gpt2" ? 1 : 3);
        const spies = new Map(
          [...layer0, ...layer1].map((p) => [p, watchInputGrad(model, p, null)]),
        );
        const given = (paths: string[]) =>
          paths.flatMap((p) => (spies.get(p) as { calls: boolean[] }).calls.splice(0));
        const grad = inputsEmbedsGradOf(model, batch);
        const norm0 =
          name === "gpt2"
            ? ["transformer.h.0.ln_1.weight", "transformer.h.0.ln_1.bias"]
            : ["model.layers.0.input_layernorm.weight"];
        const embeddings =
          name === "gpt2"
            ? ["transformer.wte.weight", "transformer.wpe.weight"]
            : ["model.embed_tokens.weight"];
        try {
          model.lossAndGrads(batch);
          expect(given(layer0)).toEqual(layer0.map(() => false));
          expect(given(layer1)).toEqual(layer1.map(() => true));
          model.lossAndGrads(batch, { inputsEmbedsGrad: grad });
          expect(given(layer0)).toEqual(layer0.map(() => true));
          given(layer1);
          // each gradient that reads layer 0's input gradient, asked for alone, turns it on and is PyTorch's
          for (const param of [...norm0, ...embeddings]) {
            const g = kernels.heap.zeros((model.params.get(param) as Tensor).shape);
            try {
              model.lossAndGrads(batch, { paramGrads: new Map([[param, g]]) });
              expect(given(layer0), param).toEqual(layer0.map(() => true));
              given(layer1);
              expectClose(`grad ${param} alone`, g.toArray(), fixtureGrad(fixture, param), 1e-4);
            } finally {
              g.dispose();
            }
          }
          // another layer's norm does not
          const other =
            name === "gpt2"
              ? "transformer.h.1.ln_1.weight"
              : "model.layers.1.input_layernorm.weight";
          const g = kernels.heap.zeros((model.params.get(other) as Tensor).shape);
          model.lossAndGrads(batch, { paramGrads: new Map([[other, g]]) });
          expect(given(layer0)).toEqual(layer0.map(() => false));
          expectClose(`grad ${other}`, g.toArray(), fixtureGrad(fixture, other), 1e-4);
          g.dispose();
        } finally {
          for (const p of spies.keys()) model.setAdapter(p, null);
          grad.dispose();
          model.dispose();
        }
      },
    );

    test.each(["llama-gqa", "gpt2"])(
      "%s + LoRA: adapter gradients do not depend on whether the input gradient is computed",
      async (name) => {
        const { model, fixture } = await load(name);
        const { batch } = fixture;
        const targets =
          name === "gpt2"
            ? ["c_attn", "c_proj", "c_fc"]
            : ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
        const peft = getPeftModel(
          model,
          new LoraConfig({
            r: 4,
            lora_alpha: 8,
            target_modules: targets,
            fan_in_fan_out: name === "gpt2",
          }),
          {
            seed: 1,
          },
        );
        // nonzero B (PEFT's init zeroes it) so that every lora_A gradient is nonzero too
        const rng = new Rng(5);
        for (const a of peft.adapters.values()) {
          const b = a.B.f32();
          for (let i = 0; i < b.length; i++) b[i] = 0.1 * rng.normal();
        }
        const { layer0 } = inputProjections(model);
        const spy = watchInputGrad(model, layer0[0], peft.adapters.get(layer0[0]) ?? null);
        const grad = inputsEmbedsGradOf(model, batch);
        const gradsOf = () =>
          new Map(peft.parameters().map((p) => [p.name, (p.grad as Tensor).toArray()]));
        try {
          peft.zeroGrad();
          model.lossAndGrads(batch, { lossScale: 0.75 });
          const skipped = gradsOf();
          peft.zeroGrad();
          model.lossAndGrads(batch, { lossScale: 0.75, inputsEmbedsGrad: grad });
          const full = gradsOf();
          expect(spy.calls).toEqual([false, true]); // the skip did happen, and then did not
          expect(maxAbs(grad.toArray())).toBeGreaterThan(0);
          expect([...skipped.keys()].sort()).toEqual([...full.keys()].sort());
          for (const layer of layer0) {
            for (const ab of ["lora_A", "lora_B"])
              expect(
                maxAbs(skipped.get(`${layer}.${ab}.weight`) as Float32Array),
                `${layer} ${ab}`,
              ).toBeGreaterThan(0);
          }
          for (const [pname, g] of full)
            expectClose(`adapter grad ${pname}`, skipped.get(pname) as Float32Array, g, 1e-6);
        } finally {
          grad.dispose();
          peft.dispose();
          model.dispose();
        }
      },
    );

    test("a wrong inputsEmbedsGrad is rejected, naming the option and the shapes", async () => {
      const { model, fixture } = await load("llama-gqa");
      const { batch } = fixture;
      const C = hiddenOf(model);
      const R = batch.batchSize * batch.seqLen;
      const bad = kernels.heap.tensor([batch.batchSize, batch.seqLen, C + 1]);
      const flat = kernels.heap.tensor([R, C]);
      const ints = kernels.heap.tensor([batch.batchSize, batch.seqLen, C], "i32");
      const want = `[${batch.batchSize}, ${batch.seqLen}, ${C}]`;
      try {
        expect(() => model.lossAndGrads(batch, { inputsEmbedsGrad: bad })).toThrow(
          `inputsEmbedsGrad must be f32 ${want}`,
        );
        expect(() => model.lossAndGrads(batch, { inputsEmbedsGrad: bad })).toThrow(
          `got f32 [${batch.batchSize}, ${batch.seqLen}, ${C + 1}]`,
        );
        expect(() => model.lossAndGrads(batch, { inputsEmbedsGrad: flat })).toThrow(
          `got f32 [${R}, ${C}]`,
        );
        expect(() => model.lossAndGrads(batch, { inputsEmbedsGrad: ints })).toThrow(
          /inputsEmbedsGrad.*got i32/,
        );
      } finally {
        bad.dispose();
        flat.dispose();
        ints.dispose();
        model.dispose();
      }
    });
  },
);
