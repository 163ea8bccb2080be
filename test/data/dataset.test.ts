import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { collate, groupIntoBatches } from "../../src/data/batches.js";
import { loadExamples } from "../../src/data/dataset.js";
import type { ChatMessage, ExampleTokenizer } from "../../src/data/examples.js";

// A transparent test tokenizer: one token per character (its code point), BOS=1 added on request,
// EOS=2, and a chat template "<role>content\n" (+ "<assistant>" as generation prompt).
const charTokenizer: ExampleTokenizer = {
  encode(text, options) {
    const ids = [...text].map((c) => c.codePointAt(0) ?? 0);
    return options?.addSpecialTokens ? [1, ...ids] : ids;
  },
  applyChatTemplate(messages: ChatMessage[], options) {
    const body = messages.map((m) => `<${m.role}>${m.content}\n`).join("");
    return options?.addGenerationPrompt ? `${body}<assistant>` : body;
  },
  eosTokenId: 2,
};
const ids = (s: string) => [...s].map((c) => c.codePointAt(0) ?? 0);

function dataFile(lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "loraga-data-"));
  const path = join(dir, "data.jsonl");
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

describe("loadExamples", () => {
  test("text rows learn every token, with the tokenizer's special tokens", async () => {
    const path = dataFile([JSON.stringify({ text: "ab" })]);
    const [ex] = await loadExamples(path, charTokenizer);
    expect(ex.inputIds).toEqual([1, ...ids("ab")]);
    expect(ex.labels).toEqual([1, ...ids("ab")]);
    expect(ex.source).toBe(`${path}:1`);
  });

  test("prompt/completion masks the prompt and appends EOS", async () => {
    const path = dataFile([JSON.stringify({ prompt: "Q", completion: "A" })]);
    const [ex] = await loadExamples(path, charTokenizer);
    expect(ex.inputIds).toEqual([1, ...ids("Q"), ...ids("A"), 2]);
    expect(ex.labels).toEqual([-100, -100, ...ids("A"), 2]);
    const [all] = await loadExamples(path, charTokenizer, { trainOnPrompt: true });
    expect(all.labels).toEqual(all.inputIds);
  });

  test("seq2seq rows: input/target text and pre-tokenized input_ids/labels", async () => {
    const path = dataFile([
      JSON.stringify({ input: "ab", target: "c" }),
      JSON.stringify({ input_ids: [3, 4, 5], labels: [6, -100] }),
    ]);
    const [text, pre] = await loadExamples(path, charTokenizer, { seq2seq: true });
    expect(text).toEqual({
      inputIds: [1, ...ids("ab")],
      labels: [1, ...ids("c")],
      source: `${path}:1`,
      seq2seq: true,
    });
    expect(pre).toEqual({
      inputIds: [3, 4, 5],
      labels: [6, -100],
      source: `${path}:2`,
      seq2seq: true,
    });
    const causalRow = dataFile([JSON.stringify({ text: "ab" })]);
    await expect(loadExamples(causalRow, charTokenizer, { seq2seq: true })).rejects.toThrow(
      /encoder-decoder model needs "input"\+"target"/,
    );
  });

  test("messages learn assistant turns only", async () => {
    const messages = [
      { role: "user", content: "hi" },
      { role: "assistant", content: "yo" },
    ];
    const path = dataFile([JSON.stringify({ messages })]);
    const [ex] = await loadExamples(path, charTokenizer);
    const text = "<user>hi\n<assistant>yo\n";
    expect(ex.inputIds).toEqual(ids(text));
    const learned = ex.labels.filter((l) => l !== -100);
    expect(learned).toEqual(ids("yo\n"));
  });

  test("pre-tokenized rows, blank lines skipped, limit", async () => {
    const path = dataFile([
      JSON.stringify({ input_ids: [5, 6, 7], labels: [-100, 6, 7] }),
      "",
      JSON.stringify({ input_ids: [8] }),
      JSON.stringify({ input_ids: [9] }),
    ]);
    const examples = await loadExamples(path, null, { limit: 2 });
    expect(examples.map((e) => e.labels)).toEqual([[-100, 6, 7], [8]]);
    expect(examples[1].source).toBe(`${path}:3`);
  });

  test.each([
    [["{not json"], /data\.jsonl:1: invalid JSON/],
    [[JSON.stringify({ foo: 1 })], /data\.jsonl:1: row has none of .* \(keys: foo\)/],
    [[JSON.stringify({ text: 3 })], /data\.jsonl:1: "text" must be a string, got a number/],
    [
      [JSON.stringify({ input_ids: [1, -3] })],
      /data\.jsonl:1: "input_ids"\[1\] must be a token id/,
    ],
    [
      [JSON.stringify({ input_ids: [1, 2], labels: [1] })],
      /"labels" has 1 entries but "input_ids" has 2/,
    ],
    [[JSON.stringify({ input_ids: [70] })], /outside the vocabulary \(size 64\)/],
    [["", JSON.stringify([1, 2])], /data\.jsonl:2: expected a JSON object, got an array/],
    [[JSON.stringify({ input_ids: [] })], /data\.jsonl:1: example has no tokens/],
    [[""], /data\.jsonl: the dataset is empty/],
  ])("bad data %# is a clear error naming file:line", async (lines, message) => {
    await expect(loadExamples(dataFile(lines), charTokenizer, { vocabSize: 64 })).rejects.toThrow(
      message,
    );
  });

  test("a missing file names the path", async () => {
    await expect(loadExamples("/nonexistent/x.jsonl", null)).rejects.toThrow(
      /\/nonexistent\/x\.jsonl: cannot read/,
    );
  });
});

describe("collate", () => {
  test("right padding, truncation, masks", () => {
    const batch = collate(
      [
        { inputIds: [1, 2, 3, 4], labels: [1, 2, 3, 4], source: "a" },
        { inputIds: [5, 6], labels: [-100, 6], source: "b" },
      ],
      { maxLength: 3, padTokenId: 0 },
    );
    expect(batch.seqLen).toBe(3);
    expect([...batch.inputIds]).toEqual([1, 2, 3, 5, 6, 0]);
    expect([...batch.attentionMask]).toEqual([1, 1, 1, 1, 1, 0]);
    expect([...(batch.labels ?? [])]).toEqual([1, 2, 3, -100, 6, -100]);
  });

  test("seq2seq examples: encoder inputs as usual, targets as batch.decoder (own length)", () => {
    const batch = collate(
      [
        { inputIds: [1, 2, 3, 4], labels: [7], source: "a", seq2seq: true },
        { inputIds: [5, 6], labels: [8, 9, -100, 10], source: "b", seq2seq: true },
      ],
      { maxLength: 3, padTokenId: 0 },
    );
    expect(batch.seqLen).toBe(3);
    expect([...batch.inputIds]).toEqual([1, 2, 3, 5, 6, 0]);
    expect([...batch.attentionMask]).toEqual([1, 1, 1, 1, 1, 0]);
    expect(batch.labels).toBeUndefined();
    expect(batch.decoder?.seqLen).toBe(3);
    expect([...(batch.decoder?.labels ?? [])]).toEqual([7, -100, -100, 8, 9, -100]);
    const causal = { inputIds: [1], labels: [1], source: "c" };
    const mixed = [causal, { ...causal, seq2seq: true as const }];
    expect(() => collate(mixed, { maxLength: 3, padTokenId: 0 })).toThrow(/seq2seq and causal/);
  });

  test("groups consecutive items", () => {
    expect(groupIntoBatches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(groupIntoBatches([1, 2, 3, 4, 5], 2, true)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(() => groupIntoBatches([1], 0)).toThrow(/batch size must be a positive integer/);
  });
});
