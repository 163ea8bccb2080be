// The run settings the form offers, taken from `loraga train`'s own flag declarations
// (src/cli/options): the same names, defaults, choices, help text and validation (each value is
// parsed by its flag's parser, so a bad value gets the CLI's message). Nothing here retypes them
// but --kernels, whose engines and meaning of "auto" are the page's own (KERNELS_FLAG).

import { maxLengthFlag } from "../../src/cli/options/data.js";
import { ENGINE_FLAGS } from "../../src/cli/options/engine.js";
import { TRAIN_LORA_FLAGS } from "../../src/cli/options/lora.js";
import { choiceFlag, type Flag, withDefault } from "../../src/cli/options/schema.js";
import { clipFlag, OPTIMIZER_FLAGS, TRAIN_DATA_FLAGS } from "../../src/cli/options/training.js";

/**
 * The page's engines: the CLI's --kernels without native (a Node addon) and ref (the test
 * oracle); "auto" is webgpu where the browser has an adapter (app/src/engine.ts).
 */
const KERNELS_FLAG = withDefault(
  choiceFlag(
    ENGINE_FLAGS.kernels.flags,
    "compute engine: auto = webgpu when this browser has a WebGPU adapter and the model runs there, else wasm",
    ["auto", "webgpu", "wasm"],
  ),
  "auto",
);

/** The form's fields, in the order shown, keyed as the CLI's option attributes. */
export const FIELDS = {
  method: TRAIN_LORA_FLAGS.method,
  r: TRAIN_LORA_FLAGS.r,
  alpha: TRAIN_LORA_FLAGS.alpha,
  target: TRAIN_DATA_FLAGS.target,
  lr: OPTIMIZER_FLAGS.lr,
  steps: OPTIMIZER_FLAGS.steps,
  batchSize: TRAIN_DATA_FLAGS.batchSize,
  maxLength: maxLengthFlag,
  gaBatches: TRAIN_DATA_FLAGS.gaBatches,
  schedule: OPTIMIZER_FLAGS.schedule,
  warmup: OPTIMIZER_FLAGS.warmup,
  clip: clipFlag,
  seed: TRAIN_LORA_FLAGS.seed,
  kernels: KERNELS_FLAG,
  threads: ENGINE_FLAGS.threads,
  dropout: TRAIN_LORA_FLAGS.dropout,
  variant: TRAIN_LORA_FLAGS.variant,
  direction: TRAIN_LORA_FLAGS.direction,
  scale: TRAIN_LORA_FLAGS.scale,
  gamma: TRAIN_LORA_FLAGS.gamma,
  svd: TRAIN_LORA_FLAGS.svd,
} as const satisfies Record<string, Flag<unknown, unknown>>;

export type FieldKey = keyof typeof FIELDS;

/** Fields shown under "LoRA-GA and init details" (folded by default). */
export const ADVANCED: readonly FieldKey[] = [
  "dropout",
  "variant",
  "direction",
  "scale",
  "gamma",
  "svd",
];

/** The parsed settings of one run (undefined: given nowhere, the CLI's meaning applies). */
export type RunSettings = {
  -readonly [K in FieldKey]: (typeof FIELDS)[K] extends Flag<infer V, infer A> ? V | A : never;
};

export type Method = RunSettings["method"];
export const METHODS: readonly Method[] = FIELDS.method.choices as readonly Method[];

/** The long flag ("--batch-size") a field stands for. */
export function flagName(key: FieldKey): string {
  return /--[a-z0-9-]+/.exec(FIELDS[key].flags)?.[0] ?? key;
}

/** The default the CLI uses when the flag is not given, as text ("" when there is none). */
function defaultText(key: FieldKey): string {
  const flag: Flag<unknown, unknown> = FIELDS[key];
  if (flag.shownDefault !== undefined) return String(flag.shownDefault);
  const value = flag.absent === "required" ? undefined : flag.absent.value;
  return value === undefined ? "" : String(value);
}

/**
 * Parses the form's texts (an empty text: the flag is not given) with the flags' own parsers;
 * throws the CLI's UsageError ("--r must be an integer >= 1, got ...") on a bad value.
 */
export function parseSettings(texts: Readonly<Record<FieldKey, string>>): RunSettings {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(FIELDS) as FieldKey[]) {
    const flag: Flag<unknown, unknown> = FIELDS[key];
    const text = texts[key].trim();
    if (text !== "") out[key] = flag.parse(text, flagName(key), "cli");
    else out[key] = flag.absent === "required" ? undefined : flag.absent.value;
  }
  return out as RunSettings;
}

/** The default texts of every field (what the form starts with). */
export function defaultTexts(): Record<FieldKey, string> {
  const out = {} as Record<FieldKey, string>;
  for (const key of Object.keys(FIELDS) as FieldKey[]) out[key] = defaultText(key);
  return out;
}
