// A character-level tokenizer in Hugging Face tokenizer.json form (BPE model with no merges, every
// character its own token, BOS prepended by the post-processor), plus its tokenizer_config.json.
// Used for the demo model (scripts/demo/build-demo-model.mjs). Ids: 0 <pad>, 1 <s>, 2 </s>,
// 3 "\n", then the 95 printable ASCII characters " " .. "~" (98 ids). Text outside that set cannot
// be encoded (the tokenizer has no unknown token) and the demo's texts never contain any.
// The layout follows what `tokenizers` (Rust) saves for the same construction, as
// scripts/fixtures/make_tiny_tokenizer.py does for the test fixture.

const CHAR_SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"] as const;

/** The characters of the vocabulary, in id order after the special tokens. */
export function charVocabulary(): string[] {
  const chars = ["\n"];
  for (let c = 32; c <= 126; c++) chars.push(String.fromCharCode(c));
  return chars;
}

/** tokenizer.json content for the character vocabulary. */
export function charTokenizerJson(): Record<string, unknown> {
  const tokens = [...CHAR_SPECIAL_TOKENS, ...charVocabulary()];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    vocab[t] = i;
  });
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: CHAR_SPECIAL_TOKENS.map((t, i) => special(t, i)),
    normalizer: null,
    pre_tokenizer: { type: "Split", pattern: { String: "" }, behavior: "Isolated", invert: false },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<s>", type_id: 0 } },
        { Sequence: { id: "B", type_id: 0 } },
      ],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** tokenizer_config.json content: the special tokens by name. */
export function charTokenizerConfig(): Record<string, unknown> {
  return { bos_token: "<s>", eos_token: "</s>", pad_token: "<pad>", model_max_length: 256 };
}

/** Number of ids of the character tokenizer (the model's vocab_size). */
export const CHAR_VOCAB_SIZE = CHAR_SPECIAL_TOKENS.length + 96;
