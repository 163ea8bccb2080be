// Data order (seeded shuffling, resumable position, held-out split, packing), evaluation metrics
// (loss/perplexity, likelihood classification against a float64 log-softmax of the logits, GSM8K
// answer extraction) and generation (greedy vs a PyTorch full-forward argmax loop from
// scripts/fixtures/make_train_reference.py; EOS; seeded sampling; top-p).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { TokenExample } from "../../src/data/examples.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import type { CausalLM } from "../../src/models/model.js";
import { packExamples, ShuffledBatches, splitHeldOut } from "../../src/train/data-order.js";
import { generate, sample } from "../../src/train/generate.js";
import {
  classifyByLikelihood,
  evaluateLoss,
  extractFinalNumber,
  gsm8kExactMatch,
} from "../../src/train/metrics.js";
import { Rng } from "../../src/util/random.js";
import { fixtureExamples } from "./resume-setup.js";
import { readBatches, refKernels, TRAIN_FIXTURES, tinyModel } from "./train-helpers.js";

function examples(n: number): TokenExample[] {
  return Array.from({ length: n }, (_, i) => ({
    inputIds: [i + 3, i + 4],
    labels: [i + 3, i + 4],
    source: `ex ${i}`,
  }));
}

describe("data order", () => {
  test("every epoch is a permutation; seeds decide the order", () => {
    const src = new ShuffledBatches(examples(10), {
      batchSize: 2,
      maxLength: 4,
      padTokenId: 0,
      seed: 1,
    });
    const seen: number[][] = [];
    for (let e = 0; e < 3; e++) {
      const ids: number[] = [];
      for (let b = 0; b < 5; b++) {
        const batch = src.next();
        ids.push(batch.inputIds[0] - 3, batch.inputIds[2] - 3);
      }
      expect([...ids].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      seen.push(ids);
    }
    expect(seen[0]).not.toEqual(seen[1]);
    const again = new ShuffledBatches(examples(10), {
      batchSize: 2,
      maxLength: 4,
      padTokenId: 0,
      seed: 1,
    });
    expect(again.next().inputIds[0] - 3).toBe(seen[0][0]);
  });

  test("state/restore continues the exact sequence (across an epoch boundary)", () => {
    const a = new ShuffledBatches(examples(7), {
      batchSize: 3,
      maxLength: 4,
      padTokenId: 0,
      seed: 9,
    });
    for (let i = 0; i < 3; i++) a.next();
    const state = JSON.parse(JSON.stringify(a.state())) as Record<string, unknown>;
    const rest = Array.from({ length: 5 }, () => Array.from(a.next().inputIds));
    const b = new ShuffledBatches(examples(7), {
      batchSize: 3,
      maxLength: 4,
      padTokenId: 0,
      seed: 1234,
    });
    b.restore(state);
    expect(Array.from({ length: 5 }, () => Array.from(b.next().inputIds))).toEqual(rest);
    expect(() => b.restore({ ...state, order: [0, 0, 1, 2, 3, 4, 5] })).toThrow(/permutation/);
  });

  test("held-out split is disjoint, complete and seeded", () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const { train, heldOut } = splitHeldOut(items, 0.25, 4);
    expect(heldOut.length).toBe(5);
    expect([...train, ...heldOut].sort((a, b) => a - b)).toEqual(items);
    expect(splitHeldOut(items, 0.25, 4).heldOut).toEqual(heldOut);
    expect(splitHeldOut(items, 5, 5).heldOut).not.toEqual(heldOut);
  });

  test("packing concatenates inputs and labels into full blocks", () => {
    const ex: TokenExample[] = [
      { inputIds: [5, 6, 7], labels: [-100, 6, 7], source: "a" },
      { inputIds: [8, 9], labels: [8, 9], source: "b" },
    ];
    const blocks = packExamples(ex, { blockSize: 3, separatorTokenId: 2 });
    expect(blocks.map((b) => b.inputIds)).toEqual([
      [5, 6, 7],
      [2, 8, 9],
    ]);
    expect(blocks.map((b) => b.labels)).toEqual([
      [-100, 6, 7],
      [2, 8, 9],
    ]);
    expect(
      packExamples(ex, { blockSize: 4, keepRemainder: true }).map((b) => b.inputIds.length),
    ).toEqual([4, 1]);
  });
});

describe("metrics and generation on a tiny Llama", () => {
  let kernels: Kernels;
  let model: CausalLM;
  beforeAll(async () => {
    kernels = await refKernels();
    model = await tinyModel(kernels);
  });
  afterAll(async () => {
    model.dispose();
    await kernels.dispose();
  });

  /** float64 log-softmax of the model's logits at (b, t). */
  function logProbs(inputIds: number[], t: number): Float64Array {
    const logits = model
      .forward({
        batchSize: 1,
        seqLen: inputIds.length,
        inputIds: Int32Array.from(inputIds),
        attentionMask: new Int32Array(inputIds.length).fill(1),
      })
      .toArray();
    const V = logits.length / inputIds.length;
    const row = logits.subarray(t * V, (t + 1) * V);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    return Float64Array.from(row, (x) => x - max - Math.log(z));
  }

  test("evaluateLoss equals the training loss of a batch; perplexity = exp(loss)", async () => {
    const batch = readBatches().eval;
    const ev = await evaluateLoss(model, [batch]);
    const { loss, tokens } = model.lossAndGrads(batch);
    expect(ev.tokens).toBe(tokens);
    expect(Math.abs(ev.loss - loss) / loss).toBeLessThanOrEqual(1e-6);
    expect(ev.perplexity).toBeCloseTo(Math.exp(ev.loss), 10);
  });

  test("classification by label likelihood sums candidate token log-probs", async () => {
    const prompt = [1, 17, 42];
    const candidates = [[5], [88, 9], [30, 31, 32]];
    const { index, scores } = await classifyByLikelihood(model, prompt, candidates);
    const want = candidates.map((c) => {
      const seq = [...prompt, ...c];
      let s = 0;
      for (let k = 0; k < c.length; k++) s += logProbs(seq, prompt.length + k - 1)[c[k]];
      return s;
    });
    scores.forEach((s, i) => {
      expect(Math.abs(s - want[i])).toBeLessThanOrEqual(1e-4);
    });
    expect(index).toBe(want.indexOf(Math.max(...want)));
  });

  test("GSM8K final-number extraction", () => {
    expect(extractFinalNumber("so 3 + 4 = 7\n#### 1,234")).toBe("1234");
    expect(extractFinalNumber("the answer is 12, then 42.")).toBe("42");
    expect(extractFinalNumber("no digits")).toBeNull();
    expect(gsm8kExactMatch("... 40 + 2 = 42", "blah\n#### 42")).toBe(true);
    expect(gsm8kExactMatch("#### 42.0", "#### 42")).toBe(true);
    expect(gsm8kExactMatch("#### -3", "#### 3")).toBe(false);
    expect(gsm8kExactMatch("nothing", "#### 3")).toBe(false);
  });

  test("batched greedy decoding equals PyTorch's argmax loop; EOS stops a row", async () => {
    const ref = JSON.parse(readFileSync(join(TRAIN_FIXTURES, "greedy.json"), "utf8")) as {
      prompts: number[][];
      generated: number[][];
    };
    expect(await generate(model, ref.prompts, { maxNewTokens: 6 })).toEqual(ref.generated);
    const eos = ref.generated[0][2];
    const out = await generate(model, ref.prompts, { maxNewTokens: 6, eosTokenId: eos });
    ref.generated.forEach((g, i) => {
      const cut = g.indexOf(eos);
      expect(out[i]).toEqual(cut < 0 ? g : g.slice(0, cut + 1));
    });
    expect(out[0].length).toBeLessThanOrEqual(3);
  });

  test("sampling is seeded; tiny top-p is greedy", async () => {
    const prompts = [[1, 17, 42, 5, 88]];
    const a = await generate(model, prompts, { maxNewTokens: 4, temperature: 1, rng: new Rng(5) });
    const b = await generate(model, prompts, { maxNewTokens: 4, temperature: 1, rng: new Rng(5) });
    expect(a).toEqual(b);
    expect(
      await generate(model, prompts, {
        maxNewTokens: 4,
        temperature: 1,
        topP: 1e-9,
        rng: new Rng(5),
      }),
    ).toEqual(await generate(model, prompts, { maxNewTokens: 4 }));
  });
});

test("sample(): frequencies follow softmax(logits / T) restricted to the nucleus", () => {
  const probs = [0.5, 0.3, 0.15, 0.05];
  const logits = Float32Array.from(probs, (p) => Math.log(p) * 2); // temperature 2 undoes the factor
  const rng = new Rng(1);
  const n = 20000;
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) counts[sample(logits, 2, 1, rng)]++;
  counts.forEach((c, i) => {
    expect(Math.abs(c / n - probs[i])).toBeLessThan(0.015);
  });
  const nucleus = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) nucleus[sample(logits, 2, 0.7, rng)]++;
  expect(nucleus[2] + nucleus[3]).toBe(0); // 0.5 + 0.3 reaches 0.7
  expect(Math.abs(nucleus[0] / n - 0.5 / 0.8)).toBeLessThan(0.015);
});

test("fixture examples cover every fixture row", () => {
  expect(fixtureExamples().length).toBe(readBatches().train.length * 2);
});
