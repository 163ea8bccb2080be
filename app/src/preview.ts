// The data preview: every row of a JSONL file read as `loraga train` reads it (data/jsonl.ts,
// data/examples.ts), with the row errors collected instead of stopping at the first one, the
// token counts, and for the first rows their text split into learned (counted in the loss) and
// prompt spans, decoded from the tokens so that what is marked is what trains.

import { IGNORE_INDEX, type TokenExample, toExample } from "../../src/data/examples.js";
import { readJsonl } from "../../src/data/jsonl.js";
import { countedLabels } from "../../src/data/learnable.js";
import type { Tokenizer } from "../../src/io/tokenizer.js";
import type { Preview, PreviewRow } from "./protocol.js";

const SHOWN_ROWS = 12;
const SHOWN_ERRORS = 20;

export async function previewData(
  file: string,
  tokenizer: Tokenizer | null,
  options: { vocabSize: number; seq2seq: boolean; maxLength: number },
): Promise<Preview> {
  const preview: Preview = {
    file,
    rows: 0,
    tokens: 0,
    learnedTokens: 0,
    shown: [],
    errors: [],
    dropped: 0,
  };
  try {
    for await (const row of readJsonl(file)) {
      let example: TokenExample;
      try {
        example = toExample(row.value, `${file}:${row.line}`, tokenizer, {
          vocabSize: options.vocabSize,
          seq2seq: options.seq2seq,
        });
      } catch (error) {
        if (preview.errors.length < SHOWN_ERRORS) preview.errors.push((error as Error).message);
        continue;
      }
      preview.rows++;
      const learned = countedLabels(example, options.maxLength);
      preview.tokens += Math.min(example.inputIds.length, options.maxLength);
      preview.learnedTokens += learned;
      if (learned === 0) preview.dropped++;
      if (preview.shown.length < SHOWN_ROWS)
        preview.shown.push(shownRow(example, row.line, learned, tokenizer));
    }
  } catch (error) {
    // an unreadable line (invalid JSON, bad UTF-8, too long) ends the file for the CLI too
    preview.errors.push((error as Error).message);
  }
  return preview;
}

/** The row's tokens grouped into runs of learned / not learned, each run decoded to text. */
function shownRow(
  example: TokenExample,
  line: number,
  learnedTokens: number,
  tokenizer: Tokenizer | null,
): PreviewRow {
  const spans: PreviewRow["spans"] = [];
  // labels are unshifted (labels[t] is the target of position t): token t is learned when its label is
  const learnedAt = (t: number) => example.labels[t] !== IGNORE_INDEX;
  let start = 0;
  for (let t = 1; t <= example.inputIds.length; t++) {
    if (t < example.inputIds.length && learnedAt(t) === learnedAt(start)) continue;
    const ids = example.inputIds.slice(start, t);
    const text =
      tokenizer === null ? `${ids.join(" ")} ` : tokenizer.decode(ids, { skipSpecialTokens: true });
    if (text !== "") spans.push({ text, learned: learnedAt(start) });
    start = t;
  }
  return { line, spans, tokens: example.inputIds.length, learnedTokens };
}
