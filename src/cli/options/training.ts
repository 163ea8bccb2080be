// Training flags of `train`: evaluation, the optimizer and its schedule, batching, logging and
// checkpoints. Every value is checked here as it is parsed (ranges as the optimizer and the
// schedule require them), so a bad value stops the command before anything runs.

import { SCHEDULE_NAMES } from "../../train/schedule.js";
import { UsageError } from "../errors.js";
import { batchSizeFlag } from "./data.js";
import { targetFlag } from "./lora.js";
import {
  choiceFlag,
  intFlag,
  negatedFlag,
  numberFlag,
  splitList,
  stringFlag,
  switchFlag,
  valueFlag,
  withDefault,
} from "./schema.js";

/** "a,b" -> AdamW's (beta1, beta2), each in [0, 1). */
function parseBetas(text: string, name: string): readonly [number, number] {
  const betas = splitList(text).map(Number);
  if (betas.length !== 2 || betas.some((b) => !(b >= 0 && b < 1)))
    throw new UsageError(`${name} must be two numbers in [0, 1), got "${text}"`);
  return [betas[0], betas[1]];
}

export const EVAL_FLAGS = {
  evalData: stringFlag("--eval-data <file>", "held-out JSONL for evaluation"),
  evalSplit: withDefault(
    intFlag("--eval-split <n>", "hold out N training rows for evaluation instead", 0),
    0,
  ),
  evalEvery: intFlag("--eval-every <n>", "evaluate every N steps (default: at the end only)"),
  earlyStopping: intFlag("--early-stopping <n>", "stop after N evaluations without improvement"),
};

export const OPTIMIZER_FLAGS = {
  optimizer: withDefault(choiceFlag("--optimizer <name>", "optimizer", ["adamw", "sgd"]), "adamw"),
  lr: withDefault(numberFlag("--lr <x>", "peak learning rate", { min: 0 }), 1e-4),
  weightDecay: withDefault(
    numberFlag("--weight-decay <x>", "decoupled weight decay", { min: 0 }),
    0,
  ),
  betas: withDefault(
    valueFlag<readonly [number, number]>(
      "--betas <a,b>",
      "AdamW betas",
      "two numbers in [0, 1)",
      parseBetas,
    ),
    [0.9, 0.999],
    "0.9,0.999",
  ),
  eps: withDefault(numberFlag("--eps <x>", "AdamW eps", { min: 0 }), 1e-8),
  momentum: withDefault(numberFlag("--momentum <x>", "SGD momentum", { min: 0 }), 0),
  schedule: withDefault(
    choiceFlag("--schedule <name>", "learning-rate schedule", SCHEDULE_NAMES),
    "linear",
  ),
  warmup: withDefault(intFlag("--warmup <n>", "warmup steps", 0), 0),
  steps: withDefault(intFlag("--steps <n>", "optimizer steps"), 100),
};

export const gradAccumFlag = withDefault(intFlag("--grad-accum <n>", "micro-batches per step"), 1);
export const clipFlag = withDefault(
  numberFlag("--clip <x>", "max global gradient norm (0 = off)", { min: 0 }),
  1,
);
export const noShuffleFlag = negatedFlag(
  "--no-shuffle",
  "keep file order (default: shuffle every epoch)",
);

export const RUN_FLAGS = {
  log: stringFlag("--log <file>", "JSONL log (default: OUT/train.jsonl)"),
  checkpointEvery: intFlag(
    "--checkpoint-every <n>",
    "write an exact-resume checkpoint every N steps",
  ),
  keepCheckpoints: intFlag("--keep-checkpoints <n>", "keep only the newest N checkpoints"),
  resume: switchFlag("--resume", "continue the run in --out from its newest checkpoint"),
  name: stringFlag("--name <name>", "run name in run.json (default: the method)"),
};

/** `train`'s --target, --ga-batches and --batch-size (the web app's form shows the same). */
export const TRAIN_DATA_FLAGS = {
  target: targetFlag("target modules (names, regex, or all-linear)"),
  gaBatches: withDefault(
    intFlag("--ga-batches <n>", "LoRA-GA: batches for gradient estimation"),
    8,
  ),
  batchSize: batchSizeFlag("rows per micro-batch", 4),
};
