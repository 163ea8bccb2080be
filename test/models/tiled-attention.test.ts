// MemoryOptions.attention on every tiny test model and engine: the "tiled" attention and the
// "full" one both match PyTorch's float64 logits, loss and every parameter gradient on the fixture
// batch, and agree with each other on a longer batch (odd T, T not a multiple of the tile, right
// padding, B > 1), with tiles of a few query rows (a sequence spans several) or of whole heads (64
// rows hold one or two heads of 29 tokens), in full fine-tuning (every parameter and
// inputs_embeds) and LoRA training, with and without gradient checkpointing. The tiled plan's peak
// engine memory is lower.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import {
  type Batch,
  type CausalLM,
  loadModel,
  type MemoryOptions,
} from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";
import {
  FIXTURE_MODELS,
  MODEL_FIXTURES,
  readModelFixture,
  relErr,
} from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";
import { attachRandomLora } from "../helpers/random-lora.js";

const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

function hiddenOf(model: CausalLM): number {
  const c = model.config as { hidden_size?: number; n_embd?: number };
  return (c.hidden_size ?? c.n_embd) as number;
}

/** B rows of T random tokens, right-padded to the given lengths, every real label counted. */
function paddedBatch(vocab: number, T: number, lengths: number[], seed: number): Batch {
  const rng = new Rng(seed);
  const B = lengths.length;
  const inputIds = Int32Array.from({ length: B * T }, () => rng.below(vocab));
  const attentionMask = Int32Array.from({ length: B * T }, (_, i) =>
    i % T < lengths[Math.floor(i / T)] ? 1 : 0,
  );
  const labels = inputIds.map((id, i) => (attentionMask[i] === 1 ? id : -100));
  return { batchSize: B, seqLen: T, inputIds, attentionMask, labels };
}

/** Loss and gradients of one step: every parameter + inputs_embeds, or random LoRA adapters'. */
function step(
  model: CausalLM,
  kernels: Kernels,
  batch: Batch,
  lora: boolean,
  memory: MemoryOptions,
): { loss: number; grads: Map<string, Float32Array> } {
  model.setMemoryOptions(memory);
  const grads = new Map<string, Float32Array>();
  if (lora) {
    const adapters = attachRandomLora(model, kernels);
    try {
      const { loss } = model.lossAndGrads(batch);
      for (const a of adapters.adapters)
        for (const p of a.parameters()) grads.set(p.name, (p.grad as Tensor).toArray());
      return { loss, grads };
    } finally {
      adapters.detach();
    }
  }
  const tensors = new Map<string, Tensor>();
  for (const [name, p] of model.params) tensors.set(name, kernels.heap.zeros(p.shape));
  const embeds = kernels.heap.zeros([batch.batchSize, batch.seqLen, hiddenOf(model)]);
  try {
    const { loss } = model.lossAndGrads(batch, { paramGrads: tensors, inputsEmbedsGrad: embeds });
    for (const [name, g] of tensors) grads.set(name, g.toArray());
    grads.set("inputs_embeds", embeds.toArray());
    return { loss, grads };
  } finally {
    for (const g of tensors.values()) g.dispose();
    embeds.dispose();
  }
}

describe.each(KERNELS)("tiled vs full attention (%s kernels)", (kernelsName) => {
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

  describe.each(FIXTURE_MODELS)("%s", (name) => {
    let model: CausalLM;
    beforeAll(async () => {
      model = await loadModel(join(MODEL_FIXTURES, name), { kernels });
    });
    afterAll(() => model?.dispose());

    test.each([
      { attention: "full", attentionTile: "auto" },
      { attention: "tiled", attentionTile: 3 },
      { attention: "tiled", attentionTile: "auto" },
    ] as const)(
      "$attention (tile $attentionTile) matches PyTorch on the fixture batch",
      async (memory) => {
        const { batch, values } = await readModelFixture(name);
        model.setMemoryOptions(memory);
        const logits = model.forward(batch).toArray();
        expect(relErr(logits, values.get("logits") as Float32Array).rel).toBeLessThanOrEqual(1e-5);
        const { loss, grads } = step(model, kernels, batch, false, memory);
        const wantLoss = (values.get("loss") as Float32Array)[0];
        expect(Math.abs(loss - wantLoss) / Math.abs(wantLoss)).toBeLessThanOrEqual(1e-5);
        for (const [pname, g] of grads) {
          if (pname === "inputs_embeds") continue; // input-grad.test.ts checks it against PyTorch
          const { rel, at } = relErr(g, values.get(`grad.${pname}`) as Float32Array);
          expect(rel, `grad ${pname}: rel err ${rel} at ${at}`).toBeLessThanOrEqual(1e-4);
        }
      },
    );

    test.each([
      { how: "full fine-tuning", lora: false, ckpt: false, tile: 4 },
      { how: "full fine-tuning, checkpointed", lora: false, ckpt: true, tile: 64 },
      { how: "LoRA", lora: true, ckpt: false, tile: 64 },
      { how: "LoRA, checkpointed", lora: true, ckpt: true, tile: 4 },
    ])(
      "same loss and gradients on 3 x 29 padded tokens, tiles of $tile rows: $how",
      ({ lora, ckpt, tile }) => {
        const batch = paddedBatch(model.vocabSize, 29, [29, 18, 5], 3);
        const full = step(model, kernels, batch, lora, {
          attention: "full",
          gradient_checkpointing: false,
        });
        const tiled = step(model, kernels, batch, lora, {
          attention: "tiled",
          attentionTile: tile,
          gradient_checkpointing: ckpt,
        });
        model.setMemoryOptions({
          attention: "tiled",
          attentionTile: "auto",
          gradient_checkpointing: false,
        });
        expect(Math.abs(tiled.loss - full.loss) / full.loss).toBeLessThanOrEqual(1e-6);
        expect([...tiled.grads.keys()]).toEqual([...full.grads.keys()]);
        for (const [pname, g] of tiled.grads) {
          const { rel, at } = relErr(g, full.grads.get(pname) as Float32Array);
          expect(rel, `grad ${pname}: rel err ${rel} at ${at}`).toBeLessThanOrEqual(1e-5);
        }
      },
    );

    test("the tiled plan's peak engine memory is lower (T = 64, tiles of 8)", () => {
      const batch = paddedBatch(model.vocabSize, 64, [64, 64], 5);
      const peak = (memory: MemoryOptions): number => {
        model.setMemoryOptions(memory); // frees the plan
        kernels.heap.resetPeak();
        model.lossAndGrads(batch);
        return kernels.heap.peakBytes;
      };
      const full = peak({ attention: "full" });
      const tiled = peak({ attention: "tiled", attentionTile: 8 });
      model.setMemoryOptions({ attention: "tiled", attentionTile: "auto" });
      expect(tiled).toBeLessThan(full);
    });
  });
});
