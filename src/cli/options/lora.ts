// LoRA flags, shared by `init` and `train` (same names, choices and defaults): the init method, the
// adapter's shape, the LoRA-GA options and the seed; --target; and the LoraConfig they describe
// for a loaded model, with LoRA-GA's rank limit checked against the model's shapes.

import type { LinearInfo } from "../../models/linear.js";
import type { CausalLM } from "../../models/model.js";
import { type InitLoraWeights, LoraConfig, LoraGAConfig } from "../../peft/config.js";
import { describe } from "../../peft/init/common.js";
import { selectTargets } from "../../peft/targets.js";
import { UsageError } from "../errors.js";
import {
  choiceFlag,
  intFlag,
  listFlag,
  numberFlag,
  splitList,
  switchFlag,
  withDefault,
} from "./schema.js";

/** --method values and the init_lora_weights each one means. */
const INIT_METHODS = {
  "lora-ga": "lora_ga",
  lora: true,
  gaussian: "gaussian",
  pissa: "pissa",
  olora: "olora",
  "lora-one": "lora_one",
} as const satisfies Record<string, InitLoraWeights>;

export type InitMethod = keyof typeof INIT_METHODS;
const INIT_METHOD_NAMES = [
  "lora-ga",
  "lora",
  "gaussian",
  "pissa",
  "olora",
  "lora-one",
] as const satisfies readonly InitMethod[];

const methodFlag = <const C extends readonly string[]>(choices: C) =>
  withDefault(choiceFlag("--method <name>", "initialisation (or what trains)", choices), "lora-ga");

/** The LoRA flags; `train` adds "full" to --method's choices (TRAIN_LORA_FLAGS). */
function loraFlags<const C extends readonly string[]>(methods: C) {
  return {
    method: methodFlag(methods),
    r: withDefault(intFlag("--r <n>", "LoRA rank"), 8),
    alpha: numberFlag("--alpha <x>", "lora_alpha (default: r)"),
    rslora: switchFlag("--rslora", "scale by alpha/sqrt(r) instead of alpha/r"),
    dropout: withDefault(
      numberFlag("--dropout <p>", "LoRA dropout", { min: 0, max: 1, maxOpen: true }),
      0,
    ),
    variant: withDefault(
      choiceFlag("--variant <name>", "LoRA-GA variant", ["official", "peft"]),
      "official",
    ),
    direction: withDefault(
      choiceFlag("--direction <d>", "LoRA-GA direction", ["ArB2r", "A2rBr", "ArBr", "random"]),
      "ArB2r",
    ),
    scale: withDefault(
      choiceFlag("--scale <s>", "LoRA-GA scale", [
        "stable",
        "gd",
        "unit",
        "weightS",
        "gd_scale",
        "weight_svd",
      ]),
      "stable",
    ),
    gamma: withDefault(
      numberFlag("--gamma <x>", "LoRA-GA stable_gamma", { min: 0, minOpen: true }),
      16,
    ),
    svd: withDefault(
      choiceFlag("--svd <kind>", "SVD for LoRA-GA / PiSSA", ["lowrank", "exact"]),
      "lowrank",
    ),
    seed: withDefault(intFlag("--seed <n>", "seed for every random choice", 0), 0),
  };
}

export const LORA_FLAGS = loraFlags(INIT_METHOD_NAMES);
export const TRAIN_LORA_FLAGS = loraFlags([...INIT_METHOD_NAMES, "full"] as const);

export const targetFlag = (help: string) =>
  withDefault(listFlag("--target <list>", help), "all-linear");

/** What loraConfigFor reads: the LoRA flags (any --method but "full"), --target and --model. */
export interface LoraSettings {
  readonly method: InitMethod;
  readonly r: number;
  readonly alpha: number | undefined;
  readonly rslora: boolean;
  readonly dropout: number;
  readonly variant: "official" | "peft";
  readonly direction: "ArB2r" | "A2rBr" | "ArBr" | "random";
  readonly scale: "stable" | "gd" | "unit" | "weightS" | "gd_scale" | "weight_svd";
  readonly gamma: number;
  readonly target: string;
  readonly model: string;
}

/** Whether the init needs gradients (estimated or from a cache). */
export function needsGradients(method: InitMethod): boolean {
  return method === "lora-ga" || method === "lora-one";
}

/**
 * The target_modules value for a --target flag: "all-linear" expands, as PEFT expands it, to the
 * names of every linear layer except the output layer; a value with regex characters is a regex
 * matched against full module paths; anything else is a comma-separated list of names.
 */
function targetModules(model: CausalLM, value: string): string[] | string {
  if (value === "all-linear") {
    const names = model
      .linears()
      .filter((l) => !l.path.endsWith("lm_head"))
      .map((l) => l.path.slice(l.path.lastIndexOf(".") + 1));
    return [...new Set(names)].sort();
  }
  return /[\\^$*+?()[\]{}|]/.test(value) ? value : splitList(value);
}

/** The linear layers --target selects (an error listing the model's linears when none). */
export function targetLinears(model: CausalLM, value: string): LinearInfo[] {
  return selectTargets(
    { target_modules: targetModules(model, value), exclude_modules: null },
    model.linears(),
  );
}

/** A --target regex must compile (checked before any model is loaded). */
export function checkTarget(name: string, value: string): void {
  if (value === "all-linear" || !/[\\^$*+?()[\]{}|]/.test(value)) return;
  try {
    new RegExp(value);
  } catch (err) {
    throw new UsageError(`${name} "${value}" is not a valid regular expression: ${String(err)}`);
  }
}

/**
 * LoRA-GA takes 2r singular vectors of each target's (out, in) gradient: 2r <= min(out, in)
 * (docs/lora-ga-spec.md §6). Checked on the loaded model's shapes before any estimation.
 */
export function checkLoraGARank(name: string, r: number, targets: readonly LinearInfo[]): void {
  for (const t of targets) {
    const limit = Math.min(t.inFeatures, t.outFeatures);
    if (2 * r > limit) {
      throw new UsageError(
        `${name}: ${describe(t)}: LoRA-GA needs 2r <= min(out, in) = ${limit}, got r=${r}; lower ${name}`,
      );
    }
  }
}

/**
 * The LoraConfig (LoraGAConfig for lora-ga) the flags describe for `model`. PEFT sets
 * fan_in_fan_out for Conv1D targets (GPT-2) and writes it into adapter_config.json; so do we.
 */
export function loraConfigFor(model: CausalLM, s: LoraSettings): LoraConfig {
  const targets = targetLinears(model, s.target);
  const fields = {
    r: s.r,
    lora_alpha: s.alpha ?? s.r,
    use_rslora: s.rslora,
    lora_dropout: s.dropout,
    target_modules: targetModules(model, s.target),
    base_model_name_or_path: s.model,
    fan_in_fan_out: targets.some((l) => l.fanInFanOut),
  };
  const init = INIT_METHODS[s.method];
  if (init !== "lora_ga") return new LoraConfig({ ...fields, init_lora_weights: init });
  return new LoraGAConfig({
    ...fields,
    direction: s.direction,
    scale: s.scale,
    stable_gamma: s.gamma,
    variant: s.variant,
  });
}
