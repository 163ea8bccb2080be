// No silent no-learning: a row whose labels are all ignored (-100) within the tokens a batch keeps
// trains nothing, yet a batch of such rows logs loss 0 and "succeeds". keepLearnableRows drops
// those rows with one warning that counts them, and makes a dataset left with none an error.
//
// A row counts as learnable when some label at index 1 .. min(length, maxLength) - 1 is not
// IGNORE_INDEX: collate (batches.ts) keeps the first maxLength tokens, and the models shift labels
// by one (models/common.ts shiftLabels), so index 0's label is never predicted. Typical causes: a
// completion-only row whose prompt fills --max-length, or pre-tokenized labels that are all -100.
// A seq2seq example's labels are its targets, none shifted away: index 0 counts too.

import { IGNORE_INDEX, type TokenExample } from "./examples.js";
import { DataError } from "./jsonl.js";

/** Number of labels of `example` that the loss counts when rows are cut at maxLength. */
export function countedLabels(example: TokenExample, maxLength: number): number {
  const end = Math.min(example.labels.length, maxLength);
  let n = 0;
  for (let t = example.seq2seq ? 0 : 1; t < end; t++) if (example.labels[t] !== IGNORE_INDEX) n++;
  return n;
}

export interface KeepLearnableOptions {
  maxLength: number;
  /** The data file, for messages. */
  file: string;
  /** Receives the one-line warning when rows are dropped (e.g. written to stderr). */
  warn: (message: string) => void;
}

/** The learnable rows of `examples` (see the file header); throws DataError when none is left. */
export function keepLearnableRows(
  examples: readonly TokenExample[],
  options: KeepLearnableOptions,
): TokenExample[] {
  const kept = examples.filter((e) => countedLabels(e, options.maxLength) > 0);
  const dropped = examples.length - kept.length;
  const why = `no learned token within the first ${options.maxLength} tokens (every label -100, or the prompt fills --max-length)`;
  if (kept.length === 0) {
    throw new DataError(
      `${options.file}: none of its ${examples.length} rows has a learned token: ${why}; nothing to train on`,
    );
  }
  if (dropped > 0) {
    const first = examples.find((e) => countedLabels(e, options.maxLength) === 0) as TokenExample;
    options.warn(
      `warning: dropped ${dropped} of ${examples.length} rows of ${options.file} with ${why}; first: ${first.source}`,
    );
  }
  return kept;
}
