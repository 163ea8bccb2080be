// The demo model's tokenizer: whole words and single digits, in Hugging Face tokenizer.json form,
// plus its tokenizer_config.json. Used by scripts/demo/build-demo-model.mjs.
//
// The demo's texts have a closed vocabulary (the generators of corpus.ts and arith-task.ts), so
// every word is one token; digits stay single tokens so that numbers are spelled digit by digit.
// A Split pre-tokenizer (regex WORD_PATTERN, behavior Isolated) cuts text into pieces:
//   " apples" / "Emma"   a run of letters with its leading space, if any
//   " ####"              the answer marker
//   " 5" / "4"           one digit, with its leading space if any (" 54" -> " 5", "4")
//   " *" / "."           one other printable character, with its leading space if any
//   " " / "\n"           a lone whitespace character
// The model is a BPE with no merges and ignore_merges: a piece found in the vocabulary is one
// token; any other piece falls back to its characters, which are all in the vocabulary (every
// printable ASCII character and newline), so nothing is unknown. The Fuse decoder concatenates the
// pieces, so decode(encode(text)) === text. BOS is prepended by the post-processor.
// Ids: 0 <pad>, 1 <s>, 2 </s>, then the characters, then " " + each non-letter character, then
// " ####" and "####", then the words of the given texts (most frequent first, ties by code unit
// order).

const SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"] as const;

/** The pre-tokenizer's pieces (see the header); also used here to collect the words. */
const WORD_PATTERN = " ?[A-Za-z]+| ?####| ?[0-9]| ?[^A-Za-z0-9\\s]|\\s";

/** tokenizer.json content whose vocabulary holds every word of `texts`. */
export function wordTokenizerJson(texts: readonly string[]): Record<string, unknown> {
  const tokens: string[] = [...SPECIAL_TOKENS, "\n"];
  for (let c = 32; c <= 126; c++) tokens.push(String.fromCharCode(c));
  for (let c = 33; c <= 126; c++) {
    const ch = String.fromCharCode(c);
    if (!/[A-Za-z]/.test(ch)) tokens.push(` ${ch}`);
  }
  tokens.push(" ####", "####");
  const counts = new Map<string, number>();
  const letters = /^ ?[A-Za-z]{2,}$/; // single letters are already characters
  for (const text of texts)
    for (const [piece] of text.matchAll(new RegExp(WORD_PATTERN, "g")))
      if (letters.test(piece)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const known = new Set(tokens);
  const words = [...counts]
    .filter(([w]) => !known.has(w))
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([w]) => w);
  tokens.push(...words);
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
    added_tokens: SPECIAL_TOKENS.map((t, i) => special(t, i)),
    normalizer: null,
    pre_tokenizer: {
      type: "Split",
      pattern: { Regex: WORD_PATTERN },
      behavior: "Isolated",
      invert: false,
    },
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
      ignore_merges: true,
      vocab,
      merges: [],
    },
  };
}

/** tokenizer_config.json content: the special tokens by name. */
export function wordTokenizerConfig(): Record<string, unknown> {
  return { bos_token: "<s>", eos_token: "</s>", pad_token: "<pad>", model_max_length: 256 };
}
