// Model-loading flags: the model directory, how its frozen linear weights are stored
// (--weight-dtype) and quantized (--quantize), memory against time in forward and backward passes
// (--gradient-checkpointing, --attention), and an adapter to apply (--adapter, --init); the checks on them that
// need no model loaded, and the loading itself.

import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadTokenizer, TOKENIZER_FILE, type Tokenizer } from "../../io/tokenizer.js";
import { type CausalLM, loadModel, type MemoryOptions } from "../../models/model.js";
import type { WeightLoadOptions } from "../../models/weights.js";
import { UsageError } from "../errors.js";
import type { Engine } from "./engine.js";
import { choiceFlag, required, stringFlag, switchFlag, withDefault } from "./schema.js";

export const modelFlag = (help = "Hugging Face model directory") =>
  required(stringFlag("--model <dir>", help));

export const weightDtypeFlag = withDefault(
  choiceFlag("--weight-dtype <dtype>", "storage of the frozen linear weights (compute stays f32)", [
    "f32",
    "bf16",
    "f16",
  ]),
  "f32",
);

/** WeightLoadOptions.offloadFrozen (models/weights.ts): frozen weights in host memory. */
export const offloadFrozenFlag = withDefault(
  choiceFlag(
    "--offload-frozen <mode>",
    "keep the frozen weights (linears, token embedding) outside the engine heap, expanded per matmul: auto (when they would take over half the heap), on, off",
    ["auto", "on", "off"],
  ),
  "auto",
);

export const quantizeFlag = (help: string) =>
  choiceFlag("--quantize <kind>", help, ["int8", "nf4"]);

/** transformers' gradient_checkpointing (models/model.ts MemoryOptions): same losses, less memory. */
export const gradientCheckpointingFlag = switchFlag(
  "--gradient-checkpointing",
  "recompute each layer's forward in the backward pass: less activation memory, same results",
);

/** MemoryOptions.attention (models/attention.ts): tiled (memory linear in T) or full ((T, T)). */
export const attentionFlag = withDefault(
  choiceFlag(
    "--attention <impl>",
    "causal attention: tiled (memory linear in the sequence length) or full (the (T, T) probabilities of every layer kept, for comparison)",
    ["tiled", "full"],
  ),
  "tiled",
);

/** --adapter and --init of eval and generate. */
export const ADAPTER_FLAGS = {
  adapter: stringFlag("--adapter <dir>", "LoRA adapter to apply"),
  init: stringFlag(
    "--init <dir>",
    "init adapter, for an adapter trained on a LoRA-GA/PiSSA/OLoRA offset base",
  ),
};

/** `name` (e.g. "--model") must be a Hugging Face model directory: a usage error otherwise. */
export function checkModelDir(name: string, dir: string): void {
  if (!existsSync(join(dir, "config.json"))) {
    throw new UsageError(
      `${name} ${dir}: no config.json there (expected a Hugging Face model directory)`,
    );
  }
}

/** `name` must be an existing file (a data file, a gradient cache). */
export function checkInputFile(name: string, path: string): void {
  if (!existsSync(path)) throw new UsageError(`${name} ${path}: no such file`);
  if (!statSync(path).isFile()) throw new UsageError(`${name} ${path}: not a file`);
}

/** `name` must be an existing directory (an adapter, a run). */
export function checkInputDir(name: string, path: string): void {
  if (!existsSync(path)) throw new UsageError(`${name} ${path}: no such directory`);
  if (!statSync(path).isDirectory()) throw new UsageError(`${name} ${path}: not a directory`);
}

export async function openModel(
  dir: string,
  engine: Engine,
  storage: WeightLoadOptions = {},
  memory: MemoryOptions = {},
): Promise<CausalLM> {
  checkModelDir("--model", dir);
  const model = await loadModel(dir, { kernels: engine.kernels, ...storage });
  model.setMemoryOptions(memory);
  return model;
}

export async function openTokenizerIfAny(dir: string): Promise<Tokenizer | null> {
  return existsSync(join(dir, TOKENIZER_FILE)) ? loadTokenizer(dir) : null;
}
