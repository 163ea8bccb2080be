// The lm_head and cross-entropy in row chunks (models/lm-head.ts, MemoryOptions.logitsChunkBytes)
// on every tiny test model, both head paths (all rows; counted rows only) and both engines:
//   - lossAndGrads with chunks of 3 rows gives PyTorch's float64 loss and every parameter gradient
//     (test/fixtures/models, scripts/fixtures/make_tiny_models.py / make_full_batch_grads.py), and
//     the unchunked run's loss and gradients to float rounding — with full fine-tuning (lm_head
//     or the tied embedding included) and with LoRA adapters on every linear, lm_head included;
//   - tokenLosses and forward() agree with the unchunked run;
//   - a spy on kernels.matmul sees the head run in chunks of at most 3 rows that cover exactly the
//     rows of the path (so the test proves chunking happened);
//   - the engine's peak memory drops by at least the (rows - chunk) x vocab logits not allocated,
//     and forward()'s whole logits do not outlive it into the next training step.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { DEFAULT_LOGITS_CHUNK_BYTES } from "../../src/models/lm-head.js";
import { type Batch, type CausalLM, loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";
import { MODEL_FIXTURES, readModelFixture, relErr } from "../helpers/model-fixtures.js";
import { attachRandomLora } from "../helpers/random-lora.js";

const MODELS = [
  "llama-gqa",
  "llama-tied",
  "mistral",
  "qwen2",
  "gpt2",
  "qwen3",
  "smollm3",
  "phi3",
  "gemma3",
  "gemma3-bias",
];
const KERNELS: KernelsName[] = ["ref", "wasm"];
const CHUNK_ROWS = 3;

interface Step {
  loss: number;
  tokens: number;
  grads: Map<string, Float32Array>;
  headRows: number[];
}

function hiddenOf(model: CausalLM): number {
  const c = model.config as { hidden_size?: number; n_embd?: number };
  return (c.hidden_size ?? c.n_embd) as number;
}

/** Runs `fn` with a spy that records the rows of every lm_head forward product. */
function spyHead<T>(model: CausalLM, kernels: Kernels, fn: () => T): { value: T; rows: number[] } {
  const V = model.config.vocab_size;
  const C = hiddenOf(model);
  const rows: number[] = [];
  const original = kernels.matmul;
  (kernels as { matmul: Kernels["matmul"] }).matmul = (out, a, b, opts) => {
    // the head's forward: (rows, C) x (V, C)^T, the lm_head (or tied embedding) weight
    if (opts?.transB === true && b.rank === 2 && b.shape[0] === V && b.shape[1] === C) {
      if (out.shape[out.rank - 1] === V) rows.push(out.size / V);
    }
    original.call(kernels, out, a, b, opts);
  };
  try {
    return { value: fn(), rows };
  } finally {
    (kernels as { matmul: Kernels["matmul"] }).matmul = original;
  }
}

/** One training step: every parameter's gradient (full), or LoRA on every linear (adapters'). */
function trainStep(
  model: CausalLM,
  kernels: Kernels,
  batch: Batch,
  chunkBytes: number,
  mode: "full" | "lora",
): Step {
  model.setMemoryOptions({ logitsChunkBytes: chunkBytes });
  const grads = new Map<string, Float32Array>();
  if (mode === "full") {
    const tensors = new Map<string, Tensor>();
    for (const [name, p] of model.params) tensors.set(name, kernels.heap.zeros(p.shape));
    try {
      const { value, rows } = spyHead(model, kernels, () =>
        model.lossAndGrads(batch, { paramGrads: tensors }),
      );
      for (const [name, g] of tensors) grads.set(name, g.toArray());
      return { ...value, grads, headRows: rows };
    } finally {
      for (const g of tensors.values()) g.dispose();
    }
  }
  const lora = attachRandomLora(model, kernels);
  try {
    const { value, rows } = spyHead(model, kernels, () => model.lossAndGrads(batch));
    for (const a of lora.adapters)
      for (const p of a.parameters()) grads.set(p.name, (p.grad as Tensor).toArray());
    return { ...value, grads, headRows: rows };
  } finally {
    lora.detach();
  }
}

/**
 * Every label counted: the fixture's all-rows batch (with PyTorch's values), else 2 rows of 32
 * seeded random ids labelled by themselves (the last position of each row, ignored by the shift,
 * is then 1/32 of the rows: below the counted-rows path's threshold).
 */
async function allRowsBatch(
  name: string,
  vocab: number,
): Promise<{ batch: Batch; values: Map<string, Float32Array> | null }> {
  if (existsSync(join(MODEL_FIXTURES, name, "batch-full.json"))) {
    return readModelFixture(name, "batch-full.json", "expected-full.safetensors");
  }
  const rng = new Rng(5);
  const inputIds = Int32Array.from({ length: 64 }, () => rng.below(vocab));
  return { batch: { batchSize: 2, seqLen: 32, inputIds, labels: inputIds.slice() }, values: null };
}

describe.each(KERNELS)("chunked lm_head (%s kernels)", (kernelsName) => {
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
    let chunkBytes: number;
    beforeAll(async () => {
      model = await loadModel(join(MODEL_FIXTURES, name), { kernels });
      chunkBytes = CHUNK_ROWS * 4 * model.config.vocab_size;
    });
    afterAll(() => model.dispose());

    const paths = [
      { what: "all rows", counted: false },
      { what: "counted rows only", counted: true },
    ];
    const modes = [
      { how: "full fine-tuning", mode: "full" as const },
      { how: "LoRA on every linear", mode: "lora" as const },
    ];
    const cases = paths.flatMap((p) => modes.map((m) => ({ ...p, ...m })));

    test.each(cases)("lossAndGrads, $what, $how", async ({ counted, mode }) => {
      const { batch, values } = counted
        ? await readModelFixture(name)
        : await allRowsBatch(name, model.config.vocab_size);
      const R = batch.batchSize * batch.seqLen;
      const whole = trainStep(model, kernels, batch, DEFAULT_LOGITS_CHUNK_BYTES, mode);
      const chunked = trainStep(model, kernels, batch, chunkBytes, mode);
      model.setMemoryOptions({ logitsChunkBytes: DEFAULT_LOGITS_CHUNK_BYTES });
      // the path: every row, or the counted ones; chunked in pieces of at most CHUNK_ROWS
      const rows = counted ? chunked.tokens : R;
      expect(counted ? chunked.tokens < R * (15 / 16) : chunked.tokens > R * (15 / 16)).toBe(true);
      expect(whole.headRows).toEqual([rows]);
      expect(chunked.headRows.length).toBe(Math.ceil(rows / CHUNK_ROWS));
      expect(Math.max(...chunked.headRows)).toBeLessThanOrEqual(CHUNK_ROWS);
      expect(chunked.headRows.reduce((a, b) => a + b, 0)).toBe(rows);
      // against the unchunked run
      expect(chunked.tokens).toBe(whole.tokens);
      expect(Math.abs(chunked.loss - whole.loss) / whole.loss).toBeLessThanOrEqual(1e-6);
      expect(chunked.grads.size).toBe(whole.grads.size);
      for (const [pname, g] of chunked.grads) {
        const want = whole.grads.get(pname) as Float32Array;
        expect(relErr(g, want).rel, `grad ${pname} vs unchunked`).toBeLessThanOrEqual(1e-6);
      }
      // against PyTorch (full fine-tuning: the fixtures hold every parameter's gradient)
      if (values === null || mode !== "full") return;
      const wantLoss = (values.get("loss") as Float32Array)[0];
      expect(Math.abs(chunked.loss - wantLoss) / wantLoss).toBeLessThanOrEqual(1e-5);
      for (const [pname, g] of chunked.grads) {
        const want = values.get(`grad.${pname}`);
        expect(want, `fixture gradient of ${pname}`).toBeDefined();
        expect(relErr(g, want as Float32Array).rel, `grad ${pname}`).toBeLessThanOrEqual(1e-4);
      }
    });

    test.each(paths)("tokenLosses and forward(), $what", async ({ counted }) => {
      const { batch } = counted
        ? await readModelFixture(name)
        : await allRowsBatch(name, model.config.vocab_size);
      model.setMemoryOptions({ logitsChunkBytes: DEFAULT_LOGITS_CHUNK_BYTES });
      const wholeNll = await model.tokenLosses(batch);
      const wholeLogits = model.forward(batch).toArray();
      model.setMemoryOptions({ logitsChunkBytes: chunkBytes });
      const spied = spyHead(model, kernels, () => model.tokenLosses(batch));
      const nll = await spied.value; // the head's products ran before tokenLosses first awaited
      const rows = spied.rows;
      const logits = model.forward(batch);
      expect(logits.shape).toEqual([batch.batchSize, batch.seqLen, model.config.vocab_size]);
      const logitValues = logits.toArray();
      model.setMemoryOptions({ logitsChunkBytes: DEFAULT_LOGITS_CHUNK_BYTES });
      expect(Math.max(...rows)).toBeLessThanOrEqual(CHUNK_ROWS);
      expect(rows.length).toBeGreaterThan(1);
      expect(relErr(nll, wholeNll).rel).toBeLessThanOrEqual(1e-6);
      for (let r = 0; r < nll.length; r++) if (wholeNll[r] === 0) expect(nll[r]).toBe(0);
      expect(relErr(logitValues, wholeLogits).rel).toBeLessThanOrEqual(1e-6);
    });
  });

  test("the engine's peak memory drops by at least the logits not allocated", async () => {
    const model = await loadModel(join(MODEL_FIXTURES, "llama-gqa"), { kernels });
    try {
      const { batch } = await allRowsBatch("llama-gqa", model.config.vocab_size);
      const V = model.config.vocab_size;
      const R = batch.batchSize * batch.seqLen;
      const peak = (bytes: number): number => {
        model.setMemoryOptions({ logitsChunkBytes: bytes }); // frees the plan
        kernels.heap.resetPeak();
        model.lossAndGrads(batch);
        return kernels.heap.peakBytes;
      };
      const whole = peak(DEFAULT_LOGITS_CHUNK_BYTES);
      const chunked = peak(CHUNK_ROWS * 4 * V);
      expect(whole - chunked).toBeGreaterThanOrEqual((R - CHUNK_ROWS) * V * 4);
      // forward()'s whole (B, T, V) logits are freed by the next training step, not kept
      model.forward(batch);
      const afterForward = kernels.heap.bytesInUse;
      model.lossAndGrads(batch);
      expect(afterForward - kernels.heap.bytesInUse).toBeGreaterThanOrEqual(R * V * 4);
      model.setMemoryOptions({ logitsChunkBytes: DEFAULT_LOGITS_CHUNK_BYTES });
    } finally {
      model.dispose();
    }
  });
});
