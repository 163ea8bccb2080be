// Accuracy by label words, the way the LoRA-GA paper evaluates T5 on GLUE (T5's "rank
// classification", Raffel et al. 2020 §2.7): every eval row is scored with each label word as its
// answer, the prediction is the label with the highest log-likelihood (sum over its tokens,
// src/train/metrics.ts continuationLogLikelihoods), and accuracy is the share of rows whose
// prediction is the row's own answer.
//
// What a row's prompt and answer are:
//   encoder-decoder (t5)  prompt = the encoder input, answer = the target sequence
//   decoder-only          prompt = the tokens before the first learned label, answer = the learned
//                         tokens after it (a {prompt, completion} row: the completion + EOS)
// The label set is --labels (each word tokenized as a row's target or completion is) or, without
// it, the distinct answers of the file in first-seen order. Rows are compared in token ids, so
// a row whose answer is not one of the label words is an error naming its FILE:LINE.
// Prompts are cut to maxLength tokens (keeping the start, as collation does).

import { groupIntoBatches } from "../../data/batches.js";
import { IGNORE_INDEX, type TokenExample } from "../../data/examples.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import type { CausalLM } from "../../models/model.js";
import { continuationLogLikelihoods } from "../../train/metrics.js";
import { UsageError } from "../errors.js";

/** A row to classify: its prompt ids and the index of its answer in the label set. */
interface LabelledRow {
  prompt: number[];
  answer: number;
}

interface LabelSet {
  /** The labels as the user reads them (the words, or the decoded / raw ids of the answers). */
  readonly names: readonly string[];
  /** Each label's token ids, as scored after a prompt. */
  readonly ids: readonly (readonly number[])[];
}

const sameIds = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** The prompt and the answer (token ids) of one example, as the header says. */
function promptAndAnswer(example: TokenExample): { prompt: number[]; answer: number[] } {
  if (example.seq2seq === true) return { prompt: example.inputIds, answer: example.labels };
  const start = example.labels.findIndex((l) => l !== IGNORE_INDEX);
  const answer = example.inputIds.slice(start);
  if (start <= 0 || example.labels.slice(start).some((l, i) => l !== answer[i])) {
    throw new UsageError(
      `${example.source}: label-word accuracy needs a prompt followed by its answer (a {prompt, completion} row, or input_ids with labels -100 on the prompt only)`,
    );
  }
  return { prompt: example.inputIds.slice(0, start), answer };
}

/**
 * The label set: `words` tokenized as answers (seq2seq: the target with special tokens, as T5 adds
 * </s>; decoder-only: the completion + EOS), or the distinct answers of `examples`.
 */
export function labelSetOf(
  examples: readonly TokenExample[],
  words: readonly string[] | undefined,
  tokenizer: Tokenizer | null,
  flagName: string,
): LabelSet {
  if (words !== undefined) {
    if (tokenizer === null)
      throw new UsageError(
        `${flagName} needs the model's tokenizer.json (without it the labels are the distinct targets of the data)`,
      );
    const seq2seq = examples[0]?.seq2seq === true;
    const ids = words.map((w) => {
      if (seq2seq) return tokenizer.encode(w, { addSpecialTokens: true });
      const completion = tokenizer.encode(w, { addSpecialTokens: false });
      if (tokenizer.eosTokenId !== null) completion.push(tokenizer.eosTokenId);
      return completion;
    });
    checkDistinct(words, ids, flagName);
    return { names: words, ids };
  }
  const ids: number[][] = [];
  for (const example of examples) {
    const { answer } = promptAndAnswer(example);
    if (!ids.some((known) => sameIds(known, answer))) ids.push(answer);
  }
  const names = ids.map((a) =>
    tokenizer === null ? JSON.stringify(a) : tokenizer.decode(a, { skipSpecialTokens: true }),
  );
  if (ids.length < 2)
    throw new UsageError(
      `label-word accuracy needs at least two labels; the data's answers are all ${names[0]} (give ${flagName})`,
    );
  return { names, ids };
}

function checkDistinct(words: readonly string[], ids: readonly number[][], flagName: string) {
  if (words.length < 2) throw new UsageError(`${flagName} needs at least two label words`);
  ids.forEach((a, i) => {
    if (a.length === 0) throw new UsageError(`${flagName}: "${words[i]}" has no tokens`);
    const j = ids.findIndex((b) => sameIds(a, b));
    if (j < i)
      throw new UsageError(`${flagName}: "${words[j]}" and "${words[i]}" are the same tokens`);
  });
}

/** Each example's prompt (cut to maxLength) and its answer's index in `labels`. */
function labelledRows(
  examples: readonly TokenExample[],
  labels: LabelSet,
  maxLength: number,
): LabelledRow[] {
  return examples.map((example) => {
    const { prompt, answer } = promptAndAnswer(example);
    const index = labels.ids.findIndex((ids) => sameIds(ids, answer));
    if (index < 0)
      throw new UsageError(
        `${example.source}: the answer is not one of the label words (${labels.names.join(", ")})`,
      );
    return { prompt: prompt.slice(0, maxLength), answer: index };
  });
}

/** The share of examples whose most likely label is their own answer. */
export async function labelWordAccuracy(
  model: CausalLM,
  examples: readonly TokenExample[],
  labels: LabelSet,
  plan: { batchSize: number; maxLength: number; padTokenId: number },
): Promise<number> {
  const rows = labelledRows(examples, labels, plan.maxLength);
  let correct = 0;
  for (const group of groupIntoBatches(rows, plan.batchSize)) {
    // one batch holds every (row, label) pair of the group: (group.length * labels) sequences
    const pairs = group.flatMap((row) =>
      labels.ids.map((continuation) => ({ prompt: row.prompt, continuation })),
    );
    const scores = await continuationLogLikelihoods(model, pairs, plan.padTokenId);
    group.forEach((row, r) => {
      const own = scores.slice(r * labels.ids.length, (r + 1) * labels.ids.length);
      let best = 0;
      for (let j = 1; j < own.length; j++) if (own[j].logProb > own[best].logProb) best = j;
      if (best === row.answer) correct++;
    });
  }
  return correct / rows.length;
}
