// Data flags: the JSONL file, rows per batch, truncation, and whether prompt tokens are learned;
// and the batches they describe (the first rows in file order, or a seeded shuffle of all rows).

import { collate, groupIntoBatches, type TokenBatch } from "../../data/batches.js";
import { loadExamples } from "../../data/dataset.js";
import type { ExampleOptions, TokenExample } from "../../data/examples.js";
import { keepLearnableRows } from "../../data/learnable.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import type { CausalLM } from "../../models/model.js";
import { isEncoderDecoder } from "../../models/registry.js";
import { Rng } from "../../util/random.js";
import { intFlag, stringFlag, switchFlag, withDefault } from "./schema.js";

const ROWS_HELP =
  "JSONL rows: {text} | {prompt, completion} | {messages} | {input_ids[, labels]}; encoder-decoder models (t5): {input, target} | {input_ids, labels}";

export const dataFlag = (help = ROWS_HELP) => stringFlag("--data <file>", help);

export const batchSizeFlag = (help: string, defaultValue: number) =>
  withDefault(intFlag("--batch-size <n>", help), defaultValue);

export const maxLengthFlag = withDefault(
  intFlag("--max-length <n>", "truncate rows to this many tokens"),
  512,
);

export const trainOnPromptFlag = (help: string) => switchFlag("--train-on-prompt", help);

/** Which rows become batches, and how they are collated. */
export interface BatchPlan {
  readonly batchSize: number;
  readonly maxLength: number;
  /** Take this many batches (default: all). */
  readonly batches?: number;
  /** Shuffle the rows with this seed before taking the first batches (default: file order). */
  readonly shuffleSeed?: number;
}

/** How rows become examples for `model`: its vocabulary, and input -> target rows for t5. */
export function exampleOptionsFor(model: CausalLM, trainOnPrompt: boolean): ExampleOptions {
  return { vocabSize: model.vocabSize, trainOnPrompt, seq2seq: isEncoderDecoder(model.modelType) };
}

/** The pad id collation uses: the tokenizer's pad, else its EOS, else 0 (pre-tokenized rows). */
export function padTokenIdOf(tokenizer: Tokenizer | null): number {
  return tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? 0;
}

/** Groups examples into right-padded batches of consecutive rows, as `plan` says. */
export function batchesOf(
  examples: readonly TokenExample[],
  plan: BatchPlan,
  padTokenId: number,
): TokenBatch[] {
  return groupRows(selectRows(examples, plan), plan, padTokenId);
}

/** The rows `plan` takes: all or a seeded shuffle of them, then the first plan.batches batches. */
function selectRows(examples: readonly TokenExample[], plan: BatchPlan): readonly TokenExample[] {
  let rows = examples;
  if (plan.shuffleSeed !== undefined) rows = new Rng(plan.shuffleSeed).shuffle([...examples]);
  if (plan.batches !== undefined) rows = rows.slice(0, plan.batches * plan.batchSize);
  return rows;
}

function groupRows(
  rows: readonly TokenExample[],
  plan: BatchPlan,
  padTokenId: number,
): TokenBatch[] {
  return groupIntoBatches(rows, plan.batchSize).map((group) =>
    collate(group, { maxLength: plan.maxLength, padTokenId }),
  );
}

/**
 * Loads the batches `plan` describes from a JSONL file: only the rows needed in file order, every
 * row when shuffling. Rows need a tokenizer unless they are pre-tokenized. Rows without a learned
 * token within maxLength are dropped with a warning, and none left is an error (data/learnable.ts).
 */
export async function loadBatches(
  file: string,
  plan: BatchPlan,
  tokenizer: Tokenizer | null,
  options: ExampleOptions,
): Promise<TokenBatch[]> {
  const limit =
    plan.batches === undefined || plan.shuffleSeed !== undefined
      ? undefined
      : plan.batches * plan.batchSize;
  const examples = await loadExamples(file, tokenizer, {
    ...options,
    ...(limit !== undefined && { limit }),
  });
  const rows = keepLearnableRows(selectRows(examples, plan), {
    maxLength: plan.maxLength,
    file,
    warn: (message) => process.stderr.write(`${message}\n`),
  });
  return groupRows(rows, plan, padTokenIdOf(tokenizer));
}
