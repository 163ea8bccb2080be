// Pieces shared by the subcommands: the engine (heap + kernels) and model/tokenizer/data loading
// from the flags every model-facing subcommand takes, and flag value parsers that name the flag.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { type Command, Option } from "commander";
import { collate, groupIntoBatches, type TokenBatch } from "../data/batches.js";
import { loadExamples } from "../data/dataset.js";
import { keepLearnableRows } from "../data/learnable.js";
import { loadTokenizer, TOKENIZER_FILE, type Tokenizer } from "../io/tokenizer.js";
import { createKernels } from "../kernels/index.js";
import type { Kernels, KernelsName } from "../kernels/kernels.js";
import { type CausalLM, loadModel } from "../models/model.js";
import type { WeightLoadOptions } from "../models/weights.js";
import { Heap } from "../tensor/heap.js";
import { Rng } from "../util/random.js";
import { UsageError } from "./config-file.js";

export function intFlag(flag: string, min = 1): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min)
      throw new UsageError(`${flag} must be an integer >= ${min}, got "${value}"`);
    return n;
  };
}

export function numberFlag(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n))
      throw new UsageError(`${flag} must be a number, got "${value}"`);
    return n;
  };
}

export function listFlag(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** The flags that choose the compute engine, shared by every model-facing subcommand. */
export function addEngineOptions(command: Command): Command {
  return command
    .addOption(
      new Option("--kernels <name>", "compute kernels").choices(["wasm", "ref"]).default("wasm"),
    )
    .option("--threads <n>", "worker threads (default: all cores)", intFlag("--threads"))
    .option("--config <file>", "YAML or JSON file with option values (flags win)")
    .option("-q, --quiet", "no progress output", false);
}

export interface Engine {
  heap: Heap;
  kernels: Kernels;
  dispose(): Promise<void>;
}

export async function openEngine(options: Record<string, unknown>): Promise<Engine> {
  const heap = new Heap();
  const threads = options.threads as number | undefined;
  const kernels = await createKernels(options.kernels as KernelsName, {
    heap,
    ...(threads === undefined ? {} : { threads }),
  });
  return { heap, kernels, dispose: () => kernels.dispose() };
}

export async function openModel(
  dir: string,
  engine: Engine,
  storage: WeightLoadOptions = {},
): Promise<CausalLM> {
  if (!existsSync(join(dir, "config.json"))) {
    throw new UsageError(
      `--model ${dir}: no config.json there (expected a Hugging Face model directory)`,
    );
  }
  return loadModel(dir, { kernels: engine.kernels, ...storage });
}

export async function openTokenizerIfAny(dir: string): Promise<Tokenizer | null> {
  return existsSync(join(dir, TOKENIZER_FILE)) ? loadTokenizer(dir) : null;
}

export interface DataFlags {
  data: string;
  batchSize: number;
  maxLength: number;
  batches?: number;
  /** Shuffle the rows with this seed before taking the first batches (default: file order). */
  shuffleSeed?: number;
  /** Learn prompt / user tokens too (default: the same loss masks as training). */
  trainOnPrompt?: boolean;
}

/**
 * Loads the first batchSize * batches rows of a JSONL file (file order, or a seeded shuffle of all
 * rows) and collates them into batches with right padding. Rows need a tokenizer unless they are
 * pre-tokenized. Rows without a learned token within maxLength are dropped with a warning
 * (data/learnable.ts).
 */
export async function loadBatches(
  flags: DataFlags,
  tokenizer: Tokenizer | null,
  vocabSize: number,
): Promise<TokenBatch[]> {
  const limit = flags.batches === undefined ? undefined : flags.batches * flags.batchSize;
  const shuffle = flags.shuffleSeed !== undefined;
  let examples = await loadExamples(flags.data, tokenizer, {
    vocabSize,
    trainOnPrompt: flags.trainOnPrompt === true,
    ...(limit === undefined || shuffle ? {} : { limit }),
  });
  if (shuffle) {
    new Rng(flags.shuffleSeed as number).shuffle(examples);
    if (limit !== undefined) examples = examples.slice(0, limit);
  }
  examples = keepLearnableRows(examples, {
    maxLength: flags.maxLength,
    file: flags.data,
    warn: (message) => process.stderr.write(`${message}\n`),
  });
  const padTokenId = tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? 0;
  return groupIntoBatches(examples, flags.batchSize).map((group) =>
    collate(group, { maxLength: flags.maxLength, padTokenId }),
  );
}
