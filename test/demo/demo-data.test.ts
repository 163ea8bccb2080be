// The demo's data generators: the arithmetic task (also written to files by
// scripts/demo/make-arith-task.mjs) is deterministic and correct; the pretraining corpus and the
// demo's word tokenizer (word-tokenizer.ts) encodes them word by word and digit by digit and
// round-trips them through the Hugging Face tokenizer implementation (src/io/tokenizer.ts).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { makeArithSplits } from "../../src/demo/arith-task.js";
import { makeCorpus } from "../../src/demo/corpus.js";
import { wordTokenizerConfig, wordTokenizerJson } from "../../src/demo/word-tokenizer.js";
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

  test("the word tokenizer: one token per word, digits one by one, round trip", async () => {
    const { train, test: held } = makeArithSplits(200, 50, 9);
    const corpus = makeCorpus(200, 9);
    const taskTexts = [...train, ...held].map((r) => r.prompt + r.completion);
    const dir = mkdtempSync(join(tmpdir(), "loraga-wordtok-"));
    writeFileSync(
      join(dir, "tokenizer.json"),
      JSON.stringify(wordTokenizerJson([...corpus, ...taskTexts])),
    );
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(wordTokenizerConfig()));
    const tok = await loadTokenizer(dir);
    expect([tok.padTokenId, tok.bosTokenId, tok.eosTokenId]).toEqual([0, 1, 2]);
    const pieces = (text: string) =>
      tok.encode(text, { addSpecialTokens: false }).map((id) => tok.decode([id]));
    // written out by hand from the pre-tokenizer's rules (word-tokenizer.ts header)
    expect(pieces("Ben has 39 books.\nAnswer: 39 - 28 = 11. #### 11")).toEqual(
      [
        "Ben",
        " has",
        " 3",
        "9",
        " books",
        ".",
        "\n",
        "Answer",
        ":",
        " 3",
        "9",
        " -",
        " 2",
        "8",
      ].concat([" =", " 1", "1", ".", " ####", " 1", "1"]),
    );
    // a word the texts never had falls back to its characters
    expect(pieces("Bob zzq")).toEqual(["B", "o", "b", " ", "z", "z", "q"]);
    for (const text of [...corpus, ...taskTexts]) {
      const ids = tok.encode(text, { addSpecialTokens: true });
      expect(ids[0]).toBe(1);
      expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
      // every run of letters is one token: no word of the demo's texts is spelled out
      const words = text.match(/[A-Za-z]{2,}/g) ?? [];
      const wordTokens = ids.slice(1).filter((id) => /^ ?[A-Za-z]{2,}$/.test(tok.decode([id])));
      expect(wordTokens.length).toBe(words.length);
    }
  });
});
