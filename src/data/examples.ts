// Turns one data row into a token example: input ids plus per-token labels (-100 = not learned).
// Accepted rows (the first matching shape wins, checked in this order):
//   {"input_ids": [...], "labels"?: [...]}    pre-tokenized; labels default to input_ids
//   {"messages": [{"role", "content"}, ...]}  rendered with the tokenizer's chat template;
//                                             only assistant turns are learned by default
//   {"prompt": "...", "completion": "..."}    only the completion (+ EOS) is learned by default
//   {"text": "..."}                           every token is learned
// Labels are NOT shifted here: the model shifts them, as transformers does.
// For an encoder-decoder model (ExampleOptions.seq2seq, t5) the rows are input -> target pairs:
//   {"input": "...", "target": "..."}          both tokenized with special tokens (T5: + </s>)
//   {"input_ids": [...], "labels": [...]}      pre-tokenized; labels are the target ids
// and the example's labels are the target sequence (its own length; every token learned unless
// -100), inputIds the encoder's input; seq2seq is set on the example.

import type { ChatMessage } from "../io/tokenizer.js";
import { DataError, describe } from "./jsonl.js";

export type { ChatMessage };
export const IGNORE_INDEX = -100;

/** The part of a tokenizer this module needs (src/io/tokenizer.ts provides it). */
export interface ExampleTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  applyChatTemplate?(
    messages: readonly ChatMessage[],
    options?: { addGenerationPrompt?: boolean },
  ): string;
  readonly eosTokenId: number | null;
}

export interface TokenExample {
  inputIds: number[];
  /**
   * Same length as inputIds; IGNORE_INDEX where the token is not learned. seq2seq examples: the
   * target sequence (any length).
   */
  labels: number[];
  /** An encoder-decoder example: inputIds feed the encoder, labels are the decoder's targets. */
  seq2seq?: true;
  /** Where the example came from, for error messages: "file:line". */
  source: string;
}

export interface ExampleOptions {
  /** Learn prompt / user / system tokens too (default false: completions / assistant turns only). */
  trainOnPrompt?: boolean;
  /** Vocabulary size, to reject out-of-range pre-tokenized ids. */
  vocabSize?: number;
  /** The model is an encoder-decoder (t5): rows are input -> target pairs (see the header). */
  seq2seq?: boolean;
}

export function toExample(
  row: Record<string, unknown>,
  source: string,
  tokenizer: ExampleTokenizer | null,
  options: ExampleOptions = {},
): TokenExample {
  let example: TokenExample;
  if (options.seq2seq === true) example = seq2seqExample(row, source, tokenizer, options);
  else if ("input_ids" in row) example = pretokenized(row, source, options);
  else {
    if (tokenizer === null) {
      throw new DataError(
        `${source}: text rows need a tokenizer (tokenizer.json in the model directory)`,
      );
    }
    if ("messages" in row) example = chat(row.messages, source, tokenizer, options);
    else if ("prompt" in row || "completion" in row)
      example = promptCompletion(row, source, tokenizer, options);
    else if ("text" in row) example = { ...plainText(row.text, source, tokenizer), source };
    else {
      const keys = Object.keys(row).join(", ") || "none";
      throw new DataError(
        `${source}: row has none of "text", "prompt"+"completion", "messages", "input_ids" (keys: ${keys})`,
      );
    }
  }
  if (example.inputIds.length === 0) throw new DataError(`${source}: example has no tokens`);
  return example;
}

function seq2seqExample(
  row: Record<string, unknown>,
  source: string,
  tokenizer: ExampleTokenizer | null,
  options: ExampleOptions,
): TokenExample {
  if ("input_ids" in row) {
    const inputIds = intArray(row.input_ids, "input_ids", source, options.vocabSize);
    const labels = intArray(row.labels, "labels", source, options.vocabSize, IGNORE_INDEX);
    if (labels.length === 0) throw new DataError(`${source}: "labels" (the target) is empty`);
    return { inputIds: [...inputIds], labels: [...labels], source, seq2seq: true };
  }
  if (!("input" in row && "target" in row)) {
    const keys = Object.keys(row).join(", ") || "none";
    throw new DataError(
      `${source}: an encoder-decoder model needs "input"+"target" or "input_ids"+"labels" rows (keys: ${keys})`,
    );
  }
  if (tokenizer === null) {
    throw new DataError(
      `${source}: text rows need a tokenizer (tokenizer.json in the model directory)`,
    );
  }
  const encode = (field: string) =>
    tokenizer.encode(requireString(row[field], field, source), { addSpecialTokens: true });
  const labels = encode("target");
  if (labels.length === 0) throw new DataError(`${source}: "target" has no tokens`);
  return { inputIds: encode("input"), labels, source, seq2seq: true };
}

function pretokenized(
  row: Record<string, unknown>,
  source: string,
  options: ExampleOptions,
): TokenExample {
  const inputIds = intArray(row.input_ids, "input_ids", source, options.vocabSize);
  let labels = inputIds;
  if (row.labels !== undefined) {
    labels = intArray(row.labels, "labels", source, options.vocabSize, IGNORE_INDEX);
    if (labels.length !== inputIds.length) {
      throw new DataError(
        `${source}: "labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}`,
      );
    }
  }
  return { inputIds, labels: [...labels], source };
}

function intArray(
  value: unknown,
  field: string,
  source: string,
  vocabSize: number | undefined,
  allowed?: number,
): number[] {
  if (!Array.isArray(value))
    throw new DataError(`${source}: "${field}" must be an array, got ${describe(value)}`);
  value.forEach((v, i) => {
    const ok = Number.isInteger(v) && ((v as number) >= 0 || v === allowed);
    if (!ok)
      throw new DataError(
        `${source}: "${field}"[${i}] must be a token id, got ${JSON.stringify(v)}`,
      );
    if (vocabSize !== undefined && (v as number) >= vocabSize) {
      throw new DataError(
        `${source}: "${field}"[${i}] = ${v} is outside the vocabulary (size ${vocabSize})`,
      );
    }
  });
  return value as number[];
}

function requireString(value: unknown, field: string, source: string): string {
  if (typeof value !== "string") {
    throw new DataError(`${source}: "${field}" must be a string, got ${describe(value)}`);
  }
  return value;
}

function plainText(value: unknown, source: string, tokenizer: ExampleTokenizer) {
  const ids = tokenizer.encode(requireString(value, "text", source), { addSpecialTokens: true });
  return { inputIds: ids, labels: [...ids] };
}

function promptCompletion(
  row: Record<string, unknown>,
  source: string,
  tokenizer: ExampleTokenizer,
  options: ExampleOptions,
): TokenExample {
  const prompt = tokenizer.encode(requireString(row.prompt, "prompt", source), {
    addSpecialTokens: true,
  });
  const completion = tokenizer.encode(requireString(row.completion, "completion", source), {
    addSpecialTokens: false,
  });
  if (tokenizer.eosTokenId !== null) completion.push(tokenizer.eosTokenId);
  const promptLabels = options.trainOnPrompt ? prompt : prompt.map(() => IGNORE_INDEX);
  return { inputIds: [...prompt, ...completion], labels: [...promptLabels, ...completion], source };
}

/**
 * Renders the conversation with the chat template and learns the assistant turns. The rendered text
 * is cut at turn boundaries found by rendering growing prefixes of the conversation; each piece is
 * tokenized on its own, so token boundaries coincide with turn boundaries.
 */
function chat(
  value: unknown,
  source: string,
  tokenizer: ExampleTokenizer,
  options: ExampleOptions,
): TokenExample {
  if (tokenizer.applyChatTemplate === undefined) {
    throw new DataError(`${source}: "messages" rows need a tokenizer with a chat template`);
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw new DataError(`${source}: "messages" must be a non-empty array`);
  }
  const messages: ChatMessage[] = value.map((m, i) => {
    if (typeof m !== "object" || m === null)
      throw new DataError(`${source}: messages[${i}] must be an object`);
    const { role, content } = m as Record<string, unknown>;
    return {
      role: requireString(role, `messages[${i}].role`, source),
      content: requireString(content, `messages[${i}].content`, source),
    };
  });
  const render = (upTo: number, addGenerationPrompt: boolean) =>
    tokenizer.applyChatTemplate?.(messages.slice(0, upTo), { addGenerationPrompt }) ?? "";
  // pieces: [text, learned]
  const pieces: Array<[string, boolean]> = [];
  let done = "";
  for (let i = 0; i < messages.length; i++) {
    const isAssistant = messages[i].role === "assistant";
    if (isAssistant) {
      const before = render(i, true);
      if (!before.startsWith(done)) throw templateNotPrefix(source, i);
      if (before.length > done.length) pieces.push([before.slice(done.length), false]);
      done = before;
    }
    const through = render(i + 1, false);
    if (!through.startsWith(done)) throw templateNotPrefix(source, i);
    pieces.push([through.slice(done.length), isAssistant]);
    done = through;
  }
  const inputIds: number[] = [];
  const labels: number[] = [];
  for (const [text, learned] of pieces) {
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    inputIds.push(...ids);
    for (const id of ids) labels.push(learned || options.trainOnPrompt ? id : IGNORE_INDEX);
  }
  return { inputIds, labels, source };
}

function templateNotPrefix(source: string, turn: number): DataError {
  return new DataError(
    `${source}: the chat template's rendering of turn ${turn} does not extend the earlier turns' ` +
      "rendering, so assistant tokens cannot be located",
  );
}
