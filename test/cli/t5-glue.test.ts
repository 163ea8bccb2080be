// The LoRA-GA paper's GLUE setting from the CLI, on the tiny T5s with a T5-style word tokenizer and
// SST-2-like text rows (scripts/fixtures/make_t5_glue_data.py): `train` on {"input", "target"} rows,
// then `eval --accuracy` / `--labels` classifies each row by label words. The accuracy is checked
// against an independent computation: PyTorch + PEFT with adapters trained and written by loraga
// (scripts/fixtures/make_loraga_written_t5_adapters.sh), and, for an adapter trained in the test,
// the library's label-word log-likelihoods (checked against transformers in
// test/train/t5-generate.test.ts) scored one pair at a time.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { type CausalLM, loadModel } from "../../src/models/model.js";
import { loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { continuationLogLikelihoods } from "../../src/train/metrics.js";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";

const GLUE = "test/fixtures/e2e/t5-glue";
const EVAL = `${GLUE}/eval.jsonl`;
const dir = tempDir();
const modelDir = (name: string) => join(dir, name);

let kernels: Kernels;
beforeAll(async () => {
  kernels = await createKernels("ref", { heap: new Heap() });
  for (const name of ["t5", "t5-v1_1"]) copyTinyModel(modelDir(name), name, "tiny-t5");
});
afterAll(async () => {
  await kernels.dispose();
});

interface EvalJson {
  loss: number;
  examples: number;
  accuracy?: number;
}

function evalCli(args: string[]): EvalJson {
  const r = runCli(["eval", "--data", EVAL, "--kernels", "ref", ...args]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as EvalJson;
}

const rows = readFileSync(EVAL, "utf8")
  .trim()
  .split("\n")
  .map((line) => JSON.parse(line) as { input: string; target: string });

/** Per row, each label's log-likelihood as the target, scored alone (no batching, no padding). */
async function scoresOf(model: CausalLM, labels: readonly string[]): Promise<number[][]> {
  const tokenizer = await loadTokenizer("test/fixtures/tokenizer/tiny-t5");
  const encode = (s: string) => tokenizer.encode(s, { addSpecialTokens: true });
  const scores: number[][] = [];
  for (const row of rows) {
    const own: number[] = [];
    for (const label of labels) {
      const pair = { prompt: encode(row.input), continuation: encode(label) };
      own.push((await continuationLogLikelihoods(model, [pair]))[0].logProb);
    }
    scores.push(own);
  }
  return scores;
}

const argmax = (xs: readonly number[]) => xs.indexOf(Math.max(...xs));

describe.each(["t5", "t5-v1_1"])("%s: eval by label words", (name) => {
  test.each(["lora", "lora-ga"])(
    "a %s adapter trained by loraga: accuracy and loss equal PyTorch + PEFT's",
    async (method) => {
      const adapter = `${GLUE}/${name}/${method}`;
      const peft = JSON.parse(readFileSync(`${adapter}-eval.json`, "utf8")) as {
        labels: string[];
        log_likelihoods: number[][];
        predictions: number[];
        accuracy: number;
        loss: number;
      };
      expect(new Set(peft.predictions).size).toBe(2); // the adapter does not predict one class only
      const args = ["--model", modelDir(name), "--adapter", adapter, "--batch-size", "5"];
      const out = evalCli([...args, "--labels", peft.labels.join(",")]);
      expect(out.examples).toBe(rows.length);
      expect(out.accuracy).toBe(peft.accuracy);
      expect(Math.abs(out.loss - peft.loss)).toBeLessThanOrEqual(1e-5 * peft.loss);
      // the label set read from the targets (first seen: positive) gives the same accuracy
      expect(evalCli([...args, "--accuracy"]).accuracy).toBe(peft.accuracy);
      // and row by row the library scores every label word as PyTorch does
      const model = await loadModel(modelDir(name), { kernels });
      await loadPeftModel(model, adapter);
      const ours = await scoresOf(model, peft.labels);
      model.dispose();
      ours.forEach((own, i) => {
        own.forEach((s, j) => {
          const want = peft.log_likelihoods[i][j];
          expect(Math.abs(s - want), `row ${i} label ${j}`).toBeLessThanOrEqual(
            1e-4 * Math.abs(want),
          );
        });
        expect(argmax(own), `row ${i}`).toBe(peft.predictions[i]);
      });
    },
  );
});

test("train on text rows, then eval --accuracy: the accuracy of the library's own scores", async () => {
  const out = join(dir, "run");
  const train = runCli([
    "train",
    ...["--model", modelDir("t5"), "--data", `${GLUE}/train.jsonl`, "--eval-data", EVAL],
    ...["--out", out, "--method", "lora-ga", "--target", "q,k,v,o,wi,wo", "--r", "2"],
    ...["--ga-batches", "2", "--batch-size", "4", "--steps", "12", "--lr", "1e-2"],
    ...["--kernels", "ref", "-q"],
  ]);
  expect(train.stderr).toBe("");
  expect(train.status).toBe(0);
  const adapter = join(out, "adapter-converted");
  const got = evalCli(["--model", modelDir("t5"), "--adapter", adapter, "--accuracy"]);
  const model = await loadModel(modelDir("t5"), { kernels });
  await loadPeftModel(model, adapter);
  const labels = ["positive", "negative"];
  const scores = await scoresOf(model, labels);
  model.dispose();
  const correct = scores.filter((own, i) => labels[argmax(own)] === rows[i].target).length;
  expect(got.accuracy).toBe(correct / rows.length);
  // eval loss = mean NLL per token of the true targets ("positive" 2 tokens with </s>, else 3)
  const nll = scores.reduce((sum, own, i) => sum - own[labels.indexOf(rows[i].target)], 0);
  const tokens = rows.reduce((n, r) => n + (r.target === "positive" ? 2 : 3), 0);
  expect(Math.abs(got.loss - nll / tokens)).toBeLessThanOrEqual(1e-5 * got.loss);
});

test("decoder-only: label words scored as completions after the prompt", async () => {
  const llama = join(dir, "llama");
  copyTinyModel(llama);
  const data = join(dir, "yes-no.jsonl");
  const questions = ["Is it good?", "Was it bad?", "Fun?", "Dull, was it?", "Any good?"];
  const lines = questions.map((q, i) =>
    JSON.stringify({ prompt: `${q} `, completion: i % 2 === 0 ? "yes" : "no" }),
  );
  writeFileSync(data, `${lines.join("\n")}\n`);
  const r = runCli(["eval", "--model", llama, "--data", data, "--labels", "yes,no", "-q"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const got = JSON.parse(r.stdout) as EvalJson;
  const model = await loadModel(llama, { kernels });
  const tokenizer = await loadTokenizer(llama);
  let correct = 0;
  for (const [i, q] of questions.entries()) {
    const prompt = tokenizer.encode(`${q} `, { addSpecialTokens: true });
    const eos = tokenizer.eosTokenId ?? 0;
    const scores: number[] = [];
    for (const word of ["yes", "no"]) {
      const continuation = [...tokenizer.encode(word, { addSpecialTokens: false }), eos];
      scores.push((await continuationLogLikelihoods(model, [{ prompt, continuation }]))[0].logProb);
    }
    if (argmax(scores) === i % 2) correct++;
  }
  model.dispose();
  expect(got.accuracy).toBe(correct / questions.length);
});

describe("eval --labels / --accuracy errors name the flag or the row", () => {
  const fail = (args: string[], message: RegExp, data = EVAL) => {
    const r = runCli(["eval", "--data", data, "--kernels", "ref", ...args]);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.status).not.toBe(0);
  };
  test("one label word", () => {
    fail(["--model", modelDir("t5"), "--labels", "positive"], /--labels needs at least two/);
  });
  test("a row whose target is not a label word", () => {
    const firstNegative = rows.findIndex((r) => r.target === "negative") + 1;
    fail(
      ["--model", modelDir("t5"), "--labels", "positive,neutral"],
      new RegExp(
        `eval\\.jsonl:${firstNegative}: the answer is not one of the label words \\(positive, neutral\\)`,
      ),
    );
  });
  test("two label words that are the same tokens", () => {
    fail(["--model", modelDir("t5"), "--labels", "positive, positive"], /the same tokens/);
  });
  test("--labels without a tokenizer", () => {
    fail(
      ["--model", "test/fixtures/models/t5", "--labels", "a,b"],
      /--labels needs the model's tokenizer\.json/,
      "test/fixtures/e2e/t5-data.jsonl", // pre-tokenized rows
    );
  });
  test("--accuracy on rows with a single target", () => {
    const one = join(dir, "one-label.jsonl");
    const text = rows
      .filter((r) => r.target === "positive")
      .map((r) => JSON.stringify(r))
      .join("\n");
    writeFileSync(one, `${text}\n`);
    const r = runCli(["eval", "--model", modelDir("t5"), "--data", one, "--accuracy"]);
    expect(r.stderr).toMatch(/needs at least two labels; the data's answers are all positive/);
    expect(r.status).not.toBe(0);
  });
});
