// Incremental decoding (createCache / forwardCached) against the full forward, which
// test/models/causal-lm.test.ts checks against PyTorch: for every fixture model, rows of different
// lengths advanced by steps of different sizes give the full forward's logits at every position;
// greedy generate() equals a plain argmax loop over model.forward (the pre-cache algorithm, written
// here); with a PEFT LoRA adapter and with 16-bit / int8 frozen weights too; cache errors name the
// numbers; the cache is freed after generate.

import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { type CausalLM, type LoadModelOptions, loadModel } from "../../src/models/model.js";
import { loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { generate } from "../../src/train/generate.js";
import { Rng } from "../../src/util/random.js";
import { FIXTURE_MODELS, MODEL_FIXTURES } from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

const FIXTURES = MODEL_FIXTURES;
const ADAPTER = join(import.meta.dirname, "..", "fixtures", "e2e", "llama-gqa", "converted"); // rank-4 LoRA by PEFT
const MODELS = FIXTURE_MODELS;
const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

function randomRows(lengths: readonly number[], vocab: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return lengths.map((len) => Array.from({ length: len }, () => rng.below(vocab)));
}

/** Full forward of right-padded rows: logits (B, T, V) as a copy. */
function fullLogits(
  model: CausalLM,
  rows: readonly (readonly number[])[],
): { logits: Float32Array; T: number; V: number } {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  const inputIds = new Int32Array(B * T);
  const attentionMask = new Int32Array(B * T);
  rows.forEach((r, b) => {
    inputIds.set(r, b * T);
    attentionMask.fill(1, b * T, b * T + r.length);
  });
  const logits = model.forward({ batchSize: B, seqLen: T, inputIds, attentionMask }).toArray();
  return { logits, T, V: logits.length / (B * T) };
}

/**
 * Advances a cache over `rows` in uneven steps (one row alone, two rows together, a two-token
 * append with logits "last", then one token per unfinished row) and checks every returned logit
 * row against the full forward at the same position: max |diff| <= 1e-5 max |logit|.
 */
function expectCachedEqualsFull(model: CausalLM, rows: readonly (readonly number[])[]): void {
  expect(rows.length).toBe(3);
  expect(
    rows[0].length >= 6 && rows[1].length >= 5 && rows[2].length >= 4,
    "rows too short for the step schedule",
  ).toBe(true);
  const full = fullLogits(model, rows);
  const { T, V } = full;
  const cache = model.createCache(rows.length, T);
  let maxDiff = 0;
  let worst = "";
  let checked = 0;
  const step = (rowList: number[], seqLen: number, last = false): void => {
    const inputIds = new Int32Array(rowList.length * seqLen);
    const starts = rowList.map((b) => cache.length(b));
    rowList.forEach((b, n) => {
      inputIds.set(rows[b].slice(starts[n], starts[n] + seqLen), n * seqLen);
    });
    const got = model.forwardCached(cache, {
      rows: rowList,
      inputIds,
      seqLen,
      logits: last ? "last" : "all",
    });
    const outT = last ? 1 : seqLen;
    expect(got.shape).toEqual([rowList.length, outT, V]);
    const data = got.f32();
    rowList.forEach((b, n) => {
      expect(cache.length(b)).toBe(starts[n] + seqLen);
      for (let t = 0; t < outT; t++) {
        const pos = starts[n] + (last ? seqLen - 1 : t);
        for (let v = 0; v < V; v++) {
          const diff = Math.abs(data[(n * outT + t) * V + v] - full.logits[(b * T + pos) * V + v]);
          if (!(diff <= maxDiff)) {
            maxDiff = diff;
            worst = `row ${b} position ${pos} token ${v}`;
          }
        }
        checked++;
      }
    });
  };
  try {
    step([1], 3);
    step([0, 2], 4);
    step([1, 0], 2, true); // rows at different positions (3 and 4), Tn > 1
    for (;;) {
      const left = [2, 0, 1].filter((b) => cache.length(b) < rows[b].length);
      if (left.length === 0) break;
      step(left, 1);
    }
  } finally {
    cache.dispose();
  }
  const scale = full.logits.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  expect(checked).toBe(rows.reduce((n, r) => n + r.length, 0) - 2); // "last" skipped two positions
  expect(
    maxDiff / scale,
    `cached vs full: max diff ${maxDiff} at ${worst} (max |logit| ${scale})`,
  ).toBeLessThanOrEqual(1e-5);
}

/** The pre-cache generation algorithm: argmax over a full forward of every sequence, per step. */
function greedyReference(
  model: CausalLM,
  prompts: readonly (readonly number[])[],
  maxNewTokens: number,
): number[][] {
  const seqs = prompts.map((p) => [...p]);
  for (let s = 0; s < maxNewTokens; s++) {
    const { logits, T, V } = fullLogits(model, seqs);
    seqs.forEach((seq, b) => {
      const at = (b * T + seq.length - 1) * V;
      let best = 0;
      for (let v = 1; v < V; v++) if (logits[at + v] > logits[at + best]) best = v;
      seq.push(best);
    });
  }
  return seqs.map((seq, b) => seq.slice(prompts[b].length));
}

describe.each(KERNELS)("KV cache (%s kernels)", (kernelsName) => {
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

  async function withModel(
    name: string,
    options: Omit<LoadModelOptions, "kernels">,
    body: (model: CausalLM) => Promise<void> | void,
  ): Promise<void> {
    const model = await loadModel(join(FIXTURES, name), { kernels, ...options });
    try {
      await body(model);
    } finally {
      model.dispose();
    }
  }

  describe.each(MODELS)("%s", (name) => {
    test("cached steps give the full forward's logits at every position", async () => {
      await withModel(name, {}, (model) => {
        expectCachedEqualsFull(model, randomRows([9, 5, 11], 96, 1));
      });
    });

    test("greedy generate equals the full-forward argmax loop; the cache is freed", async () => {
      await withModel(name, {}, async (model) => {
        const prompts = randomRows([4, 1, 7], 96, 2);
        const before = kernels.heap.bytesInUse;
        const got = await generate(model, prompts, { maxNewTokens: 8 });
        expect(kernels.heap.bytesInUse).toBe(before);
        expect(got).toEqual(greedyReference(model, prompts, 8));
      });
    });
  });

  test("a LoRA adapter (PEFT) applies in cached decoding", async () => {
    await withModel("llama-gqa", {}, async (model) => {
      const rows = randomRows([6, 10, 5], 96, 3);
      const base = fullLogits(model, rows).logits;
      await loadPeftModel(model, ADAPTER);
      const adapted = fullLogits(model, rows).logits;
      const moved = adapted.reduce((m, x, i) => Math.max(m, Math.abs(x - base[i])), 0);
      expect(moved).toBeGreaterThan(1e-3); // the adapter changes the logits, so the next check can fail
      expectCachedEqualsFull(model, rows);
      const prompts = randomRows([5, 2, 8], 96, 4);
      expect(await generate(model, prompts, { maxNewTokens: 6 })).toEqual(
        greedyReference(model, prompts, 6),
      );
    });
  });

  test.each([
    ["bf16", { weightDtype: "bf16" as const }],
    ["int8", { quantize: "int8" as const }],
  ])("frozen %s weights decode through the same linear layers", async (_kind, options) => {
    await withModel("qwen2", options, (model) => {
      expect(model.weightStorage("model.layers.0.self_attn.q_proj")).toBe(_kind);
      expectCachedEqualsFull(model, randomRows([7, 6, 9], 96, 5));
    });
  });
});

describe("KV cache errors", () => {
  let kernels: Kernels;
  let model: CausalLM;
  let other: CausalLM;
  beforeAll(async () => {
    kernels = await createKernels("ref", { heap: new Heap({ initialBytes: 8 * 2 ** 20 }) });
    model = await loadModel(join(FIXTURES, "llama-gqa"), { kernels });
    other = await loadModel(join(FIXTURES, "gpt2"), { kernels });
  });
  afterAll(async () => {
    model.dispose();
    other.dispose();
    await kernels.dispose();
  });

  test("maxLength beyond the model's positions names both numbers", async () => {
    expect(() => model.createCache(2, 65)).toThrow(/maxLength 65 exceeds the model's 64 positions/);
    expect(() => other.createCache(1, 100)).toThrow(
      /maxLength 100 exceeds the model's 64 positions/,
    );
    await expect(generate(model, [[1, 2, 3]], { maxNewTokens: 63 })).rejects.toThrow(
      /maxLength 65 .* 64/,
    );
    expect(() => model.createCache(0, 4)).toThrow(/batchSize must be a positive integer, got 0/);
  });

  test("steps past maxLength, bad rows, foreign and disposed caches are clear errors", () => {
    const cache = model.createCache(2, 4);
    model.forwardCached(cache, { rows: [0], inputIds: Int32Array.from([1, 2, 3]), seqLen: 3 });
    expect(() =>
      model.forwardCached(cache, { rows: [0], inputIds: Int32Array.from([4, 5]), seqLen: 2 }),
    ).toThrow(/row 0 holds 3 tokens; 2 more exceed the cache's maxLength 4/);
    expect(cache.length(0)).toBe(3); // a refused step changes nothing
    expect(() =>
      model.forwardCached(cache, { rows: [1, 1], inputIds: Int32Array.from([4, 5]), seqLen: 1 }),
    ).toThrow(/row 1 is listed twice/);
    expect(() =>
      model.forwardCached(cache, { rows: [2], inputIds: Int32Array.from([4]), seqLen: 1 }),
    ).toThrow(/row 2 is outside the cache's \[0, 2\)/);
    expect(() =>
      model.forwardCached(cache, { rows: [1], inputIds: Int32Array.from([96]), seqLen: 1 }),
    ).toThrow(/inputIds\[0\] = 96 is outside the vocabulary \[0, 96\)/);
    expect(() =>
      other.forwardCached(cache, { rows: [1], inputIds: Int32Array.from([4]), seqLen: 1 }),
    ).toThrow(/not created by this model/);
    cache.dispose();
    expect(() =>
      model.forwardCached(cache, { rows: [1], inputIds: Int32Array.from([4]), seqLen: 1 }),
    ).toThrow(/disposed/);
  });
});

test("phi3 LongRoPE: a prompt past original_max_position_embeddings decodes like the full forward; crossing it mid-cache is an error", async () => {
  const kernels = await createKernels("ref", { heap: new Heap({ initialBytes: 8 * 2 ** 20 }) });
  const model = await loadModel(join(FIXTURES, "phi3"), { kernels }); // original 16, max 64
  try {
    const [row] = randomRows([20], 96, 5);
    const full = fullLogits(model, [row]);
    const cache = model.createCache(1, 20);
    const step = (from: number, to: number) =>
      model
        .forwardCached(cache, {
          rows: [0],
          inputIds: Int32Array.from(row.slice(from, to)),
          seqLen: to - from,
        })
        .toArray();
    const got = [...step(0, 18), ...step(18, 19), ...step(19, 20)]; // long factors throughout
    const scale = full.logits.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const diff = got.reduce((m, x, i) => Math.max(m, Math.abs(x - full.logits[i])), 0);
    expect(diff / scale).toBeLessThanOrEqual(1e-5);
    cache.dispose();

    const short = model.createCache(1, 20);
    model.forwardCached(short, {
      rows: [0],
      inputIds: Int32Array.from(row.slice(0, 16)),
      seqLen: 16,
    });
    expect(() =>
      model.forwardCached(short, { rows: [0], inputIds: Int32Array.from([row[16]]), seqLen: 1 }),
    ).toThrow(/past original_max_position_embeddings \(16\)/);
    short.dispose();
  } finally {
    model.dispose();
    await kernels.dispose();
  }
});
