// The demo's data generators: the arithmetic task (also written to files by
// scripts/demo/make-arith-task.mjs) is deterministic and correct; the pretraining corpus and the
// task only use characters of the character tokenizer, which round-trips them through the
// Hugging Face tokenizer implementation (src/io/tokenizer.ts).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { makeArithSplits } from "../../src/demo/arith-task.js";
import {
  CHAR_VOCAB_SIZE,
  charTokenizerConfig,
  charTokenizerJson,
  charVocabulary,
} from "../../src/demo/char-tokenizer.js";
import { makeCorpus } from "../../src/demo/corpus.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { extractFinalNumber } from "../../src/train/metrics.js";

describe("demo data", () => {
  test("the arithmetic task is deterministic per seed and differs across seeds", () => {
    expect(makeArithSplits(300, 40, 1)).toEqual(makeArithSplits(300, 40, 1));
    expect(makeArithSplits(300, 40, 2).train).not.toEqual(makeArithSplits(300, 40, 1).train);
  });

  test("task answers are the arithmetic results and the test split is held out", () => {
    const { train, test: held } = makeArithSplits(500, 100, 3);
    const trainPrompts = new Set(train.map((r) => r.prompt));
    expect(held.some((r) => trainPrompts.has(r.prompt))).toBe(false);
    for (const row of [...train, ...held]) {
      // every "a op b = c" step is right, and the final number is the last step's result
      const steps = [...row.completion.matchAll(/(\d+) ([-+*]) (\d+) = (\d+)/g)];
      expect(steps.length).toBeGreaterThan(0);
      for (const [, a, op, b, c] of steps) {
        const x = Number(a);
        const y = Number(b);
        expect(op === "+" ? x + y : op === "-" ? x - y : x * y).toBe(Number(c));
      }
      expect(extractFinalNumber(row.completion)).toBe(steps[steps.length - 1][4]);
    }
  });

  test("corpus: deterministic, bounded lengths, no task markers", () => {
    const a = makeCorpus(300, 5);
    expect(makeCorpus(300, 5)).toEqual(a);
    expect(makeCorpus(300, 6)).not.toEqual(a);
    for (const t of a) {
      expect(t.length).toBeGreaterThanOrEqual(100);
      expect(t.length).toBeLessThanOrEqual(190);
      expect(t).not.toContain("####");
      expect(t).not.toContain("Answer:");
    }
  });

  test("the character tokenizer round-trips corpus and task text", async () => {
    const dir = mkdtempSync(join(tmpdir(), "loraga-chartok-"));
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(charTokenizerJson()));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(charTokenizerConfig()));
    const tok = await loadTokenizer(dir);
    expect(tok.vocabSize).toBe(CHAR_VOCAB_SIZE);
    expect([tok.padTokenId, tok.bosTokenId, tok.eosTokenId]).toEqual([0, 1, 2]);
    const vocab = charVocabulary();
    const { train } = makeArithSplits(50, 0, 9);
    const texts = [...makeCorpus(50, 9), ...train.map((r) => r.prompt + r.completion)];
    for (const text of texts) {
      const ids = tok.encode(text, { addSpecialTokens: true });
      expect(ids[0]).toBe(1);
      // one id per character, the character's index after the 3 special tokens
      expect(ids.slice(1)).toEqual([...text].map((ch) => 3 + vocab.indexOf(ch)));
      expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
    }
  });
});
