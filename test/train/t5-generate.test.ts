// Generation and label-word scoring on the tiny T5s against transformers (scripts/fixtures/
// make_tiny_t5.py, test/fixtures/train/t5/generate.json): greedy generate() equals
// generate(do_sample=False) token for token; continuationLogLikelihoods scores a label word as the
// target of the prompt (T5's GLUE evaluation), and classifyByLikelihood picks the best one.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { loadModel } from "../../src/models/model.js";
import { generate } from "../../src/train/generate.js";
import { classifyByLikelihood, continuationLogLikelihoods } from "../../src/train/metrics.js";
import { MODEL_FIXTURES } from "../helpers/model-fixtures.js";
import { refKernels, TRAIN_FIXTURES } from "./train-helpers.js";

const fixture = JSON.parse(readFileSync(join(TRAIN_FIXTURES, "t5", "generate.json"), "utf8")) as {
  prompts: number[][];
  candidates: number[][];
} & Record<string, { greedy: number[][]; log_likelihoods: number[][] }>;

describe.each(["t5", "t5-v1_1"])("%s generation and label words vs transformers", (name) => {
  test("greedy generate, label-word log-likelihoods and the classification", async () => {
    const kernels = await refKernels();
    const model = await loadModel(join(MODEL_FIXTURES, name), { kernels });
    const want = fixture[name];
    const rows = await generate(model, fixture.prompts, { maxNewTokens: 6, eosTokenId: 1 });
    expect(rows).toEqual(want.greedy);
    for (const [i, prompt] of fixture.prompts.entries()) {
      const pairs = fixture.candidates.map((c) => ({ prompt, continuation: c }));
      const ll = await continuationLogLikelihoods(model, pairs);
      ll.forEach((x, j) => {
        expect(x.tokens).toBe(fixture.candidates[j].length);
        expect(Math.abs(x.logProb - want.log_likelihoods[i][j])).toBeLessThanOrEqual(
          1e-4 * Math.abs(want.log_likelihoods[i][j]),
        );
      });
      const best = want.log_likelihoods[i].indexOf(Math.max(...want.log_likelihoods[i]));
      expect((await classifyByLikelihood(model, prompt, fixture.candidates)).index).toBe(best);
    }
    await expect(
      generate(model, fixture.prompts, { maxNewTokens: 2, temperature: 1 }),
    ).rejects.toThrow(/greedily only|rng/);
    model.dispose();
    await kernels.dispose();
  });
});
