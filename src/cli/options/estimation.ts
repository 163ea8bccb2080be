// Estimation flags (LoRA-GA step 1), shared by `estimate`, `init` and `train --method lora-ga`:
// how many batches to average, whether to take them from a seeded shuffle, and the bound on the
// engine memory for gradients; and `estimate`'s own --shard (one share of a sharded estimation).

import { UsageError } from "../errors.js";
import { batchSizeFlag, dataFlag, maxLengthFlag, trainOnPromptFlag } from "./data.js";
import { targetFlag } from "./lora.js";
import {
  attentionFlag,
  gradientCheckpointingFlag,
  offloadFrozenFlag,
  quantizeFlag,
  weightDtypeFlag,
} from "./model.js";
import { intFlag, required, switchFlag, valueFlag, withDefault } from "./schema.js";

/** A byte count with an optional K/M/G (binary) suffix: "1048576", "512M", "1.5G", "2GiB". */
function parseByteSize(text: string, name: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(text);
  const unit = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 }[(m?.[2] ?? "").toLowerCase()];
  const bytes = m === null || unit === undefined ? Number.NaN : Math.floor(Number(m[1]) * unit);
  if (!(bytes > 0 && Number.isSafeInteger(bytes)))
    throw new UsageError(`${name} must be a size in bytes like 1048576, 512M or 2G, got "${text}"`);
  return bytes;
}

export const maxGradMemoryFlag = valueFlag<number>(
  "--max-grad-memory <size>",
  "bounded estimation: engine memory for gradients at a time (e.g. 512M, 2G)",
  "a size in bytes like 1048576, 512M or 2G",
  parseByteSize,
);

/** Shard i of N, 0-based: "--shard 0/4" .. "--shard 3/4". */
export const shardFlag = valueFlag<{ index: number; count: number }>(
  "--shard <i/N>",
  "estimate only share i of N (0-based, a contiguous share of the batches) and write its partial " +
    "sum for `loraga reduce`",
  "i/N with 0 <= i < N, like 0/4",
  (text, name) => {
    const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
    const index = m === null ? Number.NaN : Number(m[1]);
    const count = m === null ? Number.NaN : Number(m[2]);
    if (!(Number.isSafeInteger(count) && count >= 1 && index < count))
      throw new UsageError(
        `${name} must be i/N with 0 <= i < N (shards count from 0), got "${text}"`,
      );
    return { index, count };
  },
);

const batchesFlag = withDefault(intFlag("--batches <n>", "number of batches to average"), 8);
const shuffleFlag = switchFlag(
  "--shuffle",
  "take the batches from a seeded shuffle of all rows (--seed) instead of the first rows",
);

const commonEstimationFlags = {
  target: targetFlag("target modules: comma-separated names, or a regex matching full paths"),
  batchSize: batchSizeFlag("rows per batch (consecutive rows, file order)", 2),
  maxLength: maxLengthFlag,
  batches: batchesFlag,
  shuffle: shuffleFlag,
  trainOnPrompt: trainOnPromptFlag(
    "count prompt / user tokens in the loss too (default: as training does)",
  ),
  maxGradMemory: maxGradMemoryFlag,
  gradientCheckpointing: gradientCheckpointingFlag,
  attention: attentionFlag,
  weightDtype: weightDtypeFlag,
  offloadFrozen: offloadFrozenFlag,
  quantize: quantizeFlag(
    "after estimating (on float weights): quantize the linear weights and log the logits error",
  ),
};

/** `estimate`'s data and estimation flags (--data required). */
export const ESTIMATE_FLAGS = { data: required(dataFlag()), ...commonEstimationFlags };
/** `init`'s: the same, --data optional (a gradient cache can replace it). */
export const INIT_ESTIMATE_FLAGS = { data: dataFlag(), ...commonEstimationFlags };
