// Frozen linear weights stored as bf16 / f16 (heap) or int8 / NF4 (off heap), expanded to f32 on
// use. Reference: the f32 model with every compressed weight replaced by its independently
// rounded / quantize-dequantized values (tensor/dtype.ts scalars, quant/int8.ts and quant/nf4.ts,
// themselves tested against numpy) must give the same logits and gradients. The logits error of
// each kind vs the f32 model is reported and held to a loose bound. Also: the LoRA-GA two-stage
// flow (estimate on f32, init + offset, then quantize W') and LoRA gradients on a quantized base.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import {
  type Batch,
  type CausalLM,
  type LoadModelOptions,
  loadModel,
} from "../../src/models/model.js";
import { saveModel } from "../../src/models/save.js";
import { LoraConfig, LoraGAConfig } from "../../src/peft/config.js";
import { estimateGradient } from "../../src/peft/estimate.js";
import { getPeftModel } from "../../src/peft/peft-model.js";
import { dequantizeInt8, quantizeInt8 } from "../../src/quant/int8.js";
import { dequantizeNf4, quantizeNf4 } from "../../src/quant/nf4.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/tensor/dtype.js";
import { Heap } from "../../src/tensor/heap.js";
import { Rng } from "../../src/util/random.js";
import { maxRelDiff } from "../helpers/allclose.js";

type Kind = "bf16" | "f16" | "int8" | "nf4";
const KINDS: Kind[] = ["bf16", "f16", "int8", "nf4"];
/** Loose per-kind bounds on max |logits - f32 logits| / max |f32 logits| for tiny random models. */
const LOGITS_BOUND: Record<Kind, number> = { bf16: 4e-2, f16: 5e-3, int8: 8e-2, nf4: 0.6 };

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/** What a weight (stored layout) becomes in `kind`, computed without the model code. */
function expectedValues(
  kind: Kind,
  data: Float32Array,
  stored: [number, number],
  fanInFanOut: boolean,
): Float32Array {
  if (kind === "bf16") return data.map((v) => bf16ToF32(f32ToBf16(v)));
  if (kind === "f16") return data.map((v) => f16ToF32(f32ToF16(v)));
  const [out, inp] = fanInFanOut ? [stored[1], stored[0]] : stored;
  const outIn = fanInFanOut ? transpose(data, stored[0], stored[1]) : data;
  const deq =
    kind === "int8"
      ? dequantizeInt8(quantizeInt8(outIn, out, inp))
      : dequantizeNf4(quantizeNf4(outIn));
  return fanInFanOut ? transpose(deq, out, inp) : deq;
}

function batchOf(vocab: number, seed: number): Batch {
  const rng = new Rng(seed);
  const inputIds = Int32Array.from({ length: 2 * 7 }, () => rng.below(vocab));
  return { batchSize: 2, seqLen: 7, inputIds, labels: inputIds.slice() };
}

function vocabOf(model: CausalLM): number {
  return (model.config as { vocab_size: number }).vocab_size;
}

/** Linear layers whose weight `kind` re-stores at load (lm_head never quantized; tied weights never). */
function compressedPaths(model: CausalLM, kind: Kind): string[] {
  return model
    .linears()
    .filter((l) =>
      l.path === "lm_head"
        ? kind !== "int8" && kind !== "nf4" && l.weightName === "lm_head.weight"
        : true,
    )
    .map((l) => l.path);
}

const COMPRESSED_MODELS = ["llama-gqa", "llama-tied", "gpt2", "qwen3", "smollm3", "phi3", "gemma3"];
const TWO_STAGE_MODELS = ["llama-gqa", "gpt2", "gemma3"];

async function open(
  name: string,
  kernels: Kernels,
  options: Omit<LoadModelOptions, "kernels"> = {},
): Promise<CausalLM> {
  return loadModel(`test/fixtures/models/${name}`, { kernels, ...options });
}

describe.each(COMPRESSED_MODELS)("%s with compressed frozen weights", (name) => {
  test.each(KINDS)(
    "%s: logits and weight gradients equal the f32 model with the rounded weights",
    async (kind) => {
      const kernels = await createKernels("ref", { heap: new Heap() });
      const f32 = await open(name, kernels);
      const options =
        kind === "int8" || kind === "nf4" ? { quantize: kind } : { weightDtype: kind };
      const model = await open(name, kernels, options);
      const batch = batchOf(vocabOf(f32), 5);
      const plainLogits = f32.forward(batch).toArray();
      const paths = compressedPaths(f32, kind);
      for (const path of paths) expect(model.weightStorage(path), path).toBe(kind);
      // reference: the f32 model holding exactly the values the compressed storage represents
      for (const info of f32.linears().filter((l) => paths.includes(l.path))) {
        const stored: [number, number] = info.fanInFanOut
          ? [info.inFeatures, info.outFeatures]
          : [info.outFeatures, info.inFeatures];
        const values = expectedValues(
          kind,
          f32.readLinearWeight(info.path),
          stored,
          info.fanInFanOut,
        );
        expect(maxRelDiff(model.readLinearWeight(info.path), values), info.path).toBe(0);
        f32.writeLinearWeight(info.path, values);
      }
      const logits = model.forward(batch).toArray();
      expect(maxRelDiff(logits, f32.forward(batch).toArray())).toBeLessThan(1e-5);
      const err = maxRelDiff(logits, plainLogits);
      console.log(`${name} ${kind}: logits max rel error vs f32 ${err.toExponential(2)}`);
      expect(err).toBeLessThan(LOGITS_BOUND[kind]);
      expect(err).toBeGreaterThan(0);
      // f32 weight gradients of every heap-stored linear (16-bit ones included)
      const heap = kernels.heap;
      const gradNames = f32
        .linears()
        .map((l) => l.weightName)
        .filter((n) => model.params.has(n));
      const grads = (m: CausalLM) => {
        const g = new Map(gradNames.map((n) => [n, heap.zeros(m.params.get(n)?.shape ?? [])]));
        m.lossAndGrads(batch, { paramGrads: g });
        const out = new Map([...g].map(([n, t]) => [n, t.toArray()]));
        for (const t of g.values()) t.dispose();
        return out;
      };
      const ours = grads(model);
      const ref = grads(f32);
      for (const n of gradNames)
        expect(maxRelDiff(ours.get(n) as Float32Array, ref.get(n) as Float32Array), n).toBeLessThan(
          1e-5,
        );
      // memory: 16-bit halves the linear weights on the heap; int8 / nf4 move them off the heap
      const full = f32.linearWeightBytes();
      const bytes = model.linearWeightBytes();
      if (kind === "bf16" || kind === "f16")
        expect(bytes.heap).toBeLessThanOrEqual(full.heap / 2 + 64 * paths.length);
      else expect(bytes.offHeap).toBeLessThan(full.heap / (kind === "int8" ? 3 : 5));
      f32.dispose();
      model.dispose();
      await kernels.dispose();
    },
  );
});

describe.each(TWO_STAGE_MODELS)("LoRA-GA two-stage flow on %s", (name) => {
  test("estimate on f32, init + offset, quantize W' (nf4 / int8), then LoRA gradients on the quantized base", async () => {
    const kernels = await createKernels("ref", { heap: new Heap() });
    const model = await open(name, kernels);
    const vocab = vocabOf(model);
    const batches = [batchOf(vocab, 1), batchOf(vocab, 2)];
    const targets = model
      .linears()
      .filter((l) => l.path !== "lm_head")
      .map((l) => l.path);
    const { grads } = await estimateGradient(model, batches, { targets });
    const modules = name === "gpt2" ? ["c_attn", "c_fc"] : ["q_proj", "down_proj"];
    const peft = getPeftModel(
      model,
      new LoraGAConfig({ r: 2, lora_alpha: 4, target_modules: modules }),
      { namedGrad: grads },
    );
    const offsetPaths = [...peft.adapters.keys()];
    const offsetBase = new Map(offsetPaths.map((p) => [p, model.readLinearWeight(p)]));
    const before = model.forward(batches[0]).toArray();
    for (const kind of ["int8", "nf4"] as const) {
      model.quantizeLinears(kind);
      for (const info of model.linears().filter((l) => offsetPaths.includes(l.path))) {
        const stored: [number, number] = info.fanInFanOut
          ? [info.inFeatures, info.outFeatures]
          : [info.outFeatures, info.inFeatures];
        // the OFFSET base W' = W - s B0 A0 is what got quantized
        const expected = expectedValues(
          kind,
          offsetBase.get(info.path) as Float32Array,
          stored,
          info.fanInFanOut,
        );
        expect(maxRelDiff(model.readLinearWeight(info.path), expected), info.path).toBe(0);
      }
      const err = maxRelDiff(model.forward(batches[0]).toArray(), before);
      console.log(
        `${name} LoRA-GA init then ${kind}: logits max rel error vs f32 W' + adapters ${err.toExponential(2)}`,
      );
      expect(err).toBeLessThan(LOGITS_BOUND[kind]);
      // LoRA gradients on the quantized base equal those on the same (dequantized) values in f32
      peft.zeroGrad();
      model.lossAndGrads(batches[1]);
      const quantGrads = peft.parameters().map((p) => p.grad?.toArray() as Float32Array);
      const deq = new Map(model.linears().map((l) => [l.path, model.readLinearWeight(l.path)]));
      model.quantizeLinears("f32");
      for (const [p, data] of deq)
        if (model.weightStorage(p) === "f32" && p !== "lm_head") model.writeLinearWeight(p, data);
      peft.zeroGrad();
      model.lossAndGrads(batches[1]);
      peft.parameters().forEach((p, i) => {
        expect(maxRelDiff(quantGrads[i], p.grad?.toArray() as Float32Array), p.name).toBeLessThan(
          1e-5,
        );
      });
      expect(quantGrads.some((g) => g.some((v) => v !== 0))).toBe(true);
      // back to W' for the next kind
      for (const [p, data] of offsetBase) model.writeLinearWeight(p, data);
      for (const info of model.linears()) {
        if (!offsetBase.has(info.path) && info.path !== "lm_head")
          model.writeLinearWeight(info.path, deq.get(info.path) as Float32Array);
      }
    }
    peft.dispose();
    model.dispose();
    await kernels.dispose();
  });
});

test("quantized weights: no gradients, no re-storing a tied weight, adapters must come first", async () => {
  const kernels = await createKernels("ref", { heap: new Heap() });
  const model = await open("llama-tied", kernels, { quantize: "int8" });
  const batch = batchOf(vocabOf(model), 3);
  const q = "model.layers.0.self_attn.q_proj";
  const grad = kernels.heap.zeros([model.linears()[0].outFeatures, model.linears()[0].inFeatures]);
  expect(() => model.lossAndGrads(batch, { paramGrads: new Map([[`${q}.weight`, grad]]) })).toThrow(
    /not a parameter/,
  );
  expect(() => model.quantizeLinears("nf4", ["lm_head"])).toThrow(/tied embedding/);
  // applyLora reads the base weight (LoRA-GA offsets it): a quantized base must be quantized after
  expect(() =>
    getPeftModel(
      model,
      new LoraConfig({ r: 2, target_modules: ["q_proj"], init_lora_weights: true }),
    ),
  ).toThrow(/attach adapters before quantizeLinears/);
  grad.dispose();
  model.dispose();
});

test("saveModel writes 16-bit weights widened exactly and refuses a quantized base", async () => {
  const kernels = await createKernels("ref", { heap: new Heap() });
  const model = await open("llama-gqa", kernels, { weightDtype: "bf16" });
  const out = join(mkdtempSync(join(tmpdir(), "loraga-frozen-")), "saved");
  await saveModel(model, out, { sourceDir: "test/fixtures/models/llama-gqa" });
  const file = await SafetensorsFile.open(join(out, "model.safetensors"));
  const q = "model.layers.1.self_attn.q_proj";
  expect(await file.readF32(`${q}.weight`)).toEqual(model.readLinearWeight(q));
  await file.close();
  model.quantizeLinears("nf4", [q]);
  await expect(
    saveModel(model, `${out}-2`, { sourceDir: "test/fixtures/models/llama-gqa" }),
  ).rejects.toThrow(/quantized .* before quantizeLinears/);
  rmSync(join(out, ".."), { recursive: true, force: true });
  model.dispose();
});
