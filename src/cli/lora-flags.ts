// The LoRA / LoRA-GA flags shared by `loraga init` and `loraga train`, and the LoraConfig they
// describe. One place, so both commands accept the same names, choices and defaults.

import { type Command, Option } from "commander";
import type { CausalLM } from "../models/model.js";
import { type InitLoraWeights, LoraConfig, LoraGAConfig } from "../peft/config.js";
import { selectTargets } from "../peft/targets.js";
import { targetModules } from "./commands/estimate.js";
import { intFlag, numberFlag } from "./common.js";

/** --method values and the init_lora_weights each one means. */
export const INIT_METHODS: Readonly<Record<string, InitLoraWeights>> = {
  "lora-ga": "lora_ga",
  lora: true,
  gaussian: "gaussian",
  pissa: "pissa",
  olora: "olora",
  "lora-one": "lora_one",
};

/** Adds --method (with `extraMethods` as further choices) and the adapter shape / LoRA-GA flags. */
export function addLoraFlags(command: Command, extraMethods: readonly string[] = []): Command {
  return command
    .addOption(
      new Option("--method <name>", "initialisation (or what trains)")
        .choices([...Object.keys(INIT_METHODS), ...extraMethods])
        .default("lora-ga"),
    )
    .option("--r <n>", "LoRA rank", intFlag("--r"), 8)
    .option("--alpha <x>", "lora_alpha (default: r)", numberFlag("--alpha"))
    .option("--rslora", "scale by alpha/sqrt(r) instead of alpha/r", false)
    .option("--dropout <p>", "LoRA dropout", numberFlag("--dropout"), 0)
    .addOption(
      new Option("--variant <name>", "LoRA-GA variant")
        .choices(["official", "peft"])
        .default("official"),
    )
    .addOption(
      new Option("--direction <d>", "LoRA-GA direction")
        .choices(["ArB2r", "A2rBr", "ArBr", "random"])
        .default("ArB2r"),
    )
    .addOption(
      new Option("--scale <s>", "LoRA-GA scale")
        .choices(["stable", "gd", "unit", "weightS", "gd_scale", "weight_svd"])
        .default("stable"),
    )
    .option("--gamma <x>", "LoRA-GA stable_gamma", numberFlag("--gamma"), 16)
    .addOption(
      new Option("--svd <kind>", "SVD for LoRA-GA / PiSSA")
        .choices(["lowrank", "exact"])
        .default("lowrank"),
    )
    .option("--seed <n>", "seed for every random choice", intFlag("--seed", 0), 0);
}

/**
 * The LoraConfig (LoraGAConfig for lora-ga) the flags describe for `model`. PEFT sets
 * fan_in_fan_out for Conv1D targets (GPT-2) and writes it into adapter_config.json; so do we.
 */
export function loraConfigFromFlags(model: CausalLM, options: Record<string, unknown>): LoraConfig {
  const method = INIT_METHODS[options.method as string];
  const r = options.r as number;
  const base = {
    r,
    lora_alpha: (options.alpha as number | undefined) ?? r,
    use_rslora: options.rslora === true,
    lora_dropout: options.dropout as number,
    target_modules: targetModules(model, options.target as string),
    base_model_name_or_path: options.model as string,
  };
  const probe = new LoraConfig({ ...base, init_lora_weights: true });
  const fields = {
    ...base,
    fan_in_fan_out: selectTargets(probe, model.linears()).some((l) => l.fanInFanOut),
  };
  if (method !== "lora_ga") return new LoraConfig({ ...fields, init_lora_weights: method });
  return new LoraGAConfig({
    ...fields,
    direction: options.direction as "ArB2r",
    scale: options.scale as "stable",
    stable_gamma: options.gamma as number,
    variant: options.variant as "official",
  });
}

/** Whether the init needs gradients (estimated or from a cache). */
export function needsGradients(options: Record<string, unknown>): boolean {
  const method = INIT_METHODS[options.method as string];
  return method === "lora_ga" || method === "lora_one";
}
