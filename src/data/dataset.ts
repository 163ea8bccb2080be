// Loads a JSONL data file into token examples (see examples.ts for the accepted row shapes).
// An empty file is an error; every row error names FILE:LINE.

import {
  type ExampleOptions,
  type ExampleTokenizer,
  type TokenExample,
  toExample,
} from "./examples.js";
import { DataError, readJsonl } from "./jsonl.js";

export interface LoadExamplesOptions extends ExampleOptions {
  /** Stop after this many examples (e.g. the batches needed for gradient estimation). */
  limit?: number;
}

export async function loadExamples(
  path: string,
  tokenizer: ExampleTokenizer | null,
  options: LoadExamplesOptions = {},
): Promise<TokenExample[]> {
  const examples: TokenExample[] = [];
  for await (const row of readJsonl(path)) {
    if (options.limit !== undefined && examples.length >= options.limit) break;
    examples.push(toExample(row.value, `${path}:${row.line}`, tokenizer, options));
  }
  if (examples.length === 0) throw new DataError(`${path}: the dataset is empty`);
  return examples;
}
