// Registry of adapter initialisations: init_lora_weights value -> init function.
// Every entry is a pure function (InitContext, InitOptions) -> {A, B, baseOffset} (init/common.ts).
// Names follow PEFT's init_lora_weights values; "lora_one" is ours (init/lora-one.ts).

import type { InitLoraWeights, LoraGAConfig } from "../config.js";
import type { InitContext, InitResult, SvdChoice } from "./common.js";
import { defaultInit, noLoraInit } from "./default.js";
import { gaussianInit } from "./gaussian.js";
import { type LoraGAInitOptions, loraGAInit } from "./lora-ga.js";
import { type LoraOneInitOptions, loraOneInit } from "./lora-one.js";
import { oloraInit } from "./olora.js";
import { parsePissa, pissaInit } from "./pissa.js";

export type { InitContext, InitResult } from "./common.js";

export interface InitOptions {
  /** Required for "lora_ga". */
  loraGA?: LoraGAInitOptions;
  loraOne?: LoraOneInitOptions;
  /** SVD choice for pissa (ignored: pissa's name decides), lora_ga / lora_one defaults. */
  svd?: SvdChoice;
}

export type InitMethod =
  | "default"
  | "none"
  | "gaussian"
  | "pissa"
  | "olora"
  | "lora_ga"
  | "lora_one";
type InitFn = (ctx: InitContext, options: InitOptions, name: string) => InitResult;

const REGISTRY: Readonly<Record<InitMethod, InitFn>> = {
  default: (ctx) => defaultInit(ctx),
  none: (ctx) => noLoraInit(ctx),
  gaussian: (ctx) => gaussianInit(ctx),
  pissa: (ctx, _o, name) => pissaInit(ctx, parsePissa(name)),
  olora: (ctx) => oloraInit(ctx),
  lora_ga: (ctx, o) => {
    if (o.loraGA === undefined)
      throw new Error(`module ${ctx.path}: init "lora_ga" needs LoRA-GA options`);
    return loraGAInit(ctx, { ...o.svd, ...o.loraGA });
  },
  lora_one: (ctx, o) => loraOneInit(ctx, { ...o.svd, ...o.loraOne }),
};

/** The registry entry for an init_lora_weights value (error lists what is supported). */
export function initMethodOf(value: InitLoraWeights): InitMethod {
  if (value === true) return "default";
  if (value === false) return "none";
  if (value === "gaussian" || value === "olora" || value === "lora_ga" || value === "lora_one")
    return value;
  if (typeof value === "string" && /^pissa(_niter_[0-9]+)?$/.test(value)) return "pissa";
  throw new Error(
    `unsupported init_lora_weights ${JSON.stringify(value)}; supported: true, false, "gaussian", "pissa", "pissa_niter_<N>", "olora", "lora_ga", "lora_one"`,
  );
}

/** Runs the init named by `value` for one module. */
export function initAdapter(
  value: InitLoraWeights,
  ctx: InitContext,
  options: InitOptions = {},
): InitResult {
  const method = initMethodOf(value);
  return REGISTRY[method](ctx, options, String(value));
}

/** LoRA-GA init options from a LoraGAConfig. */
export function loraGAOptionsOf(config: LoraGAConfig, svd: SvdChoice = {}): LoraGAInitOptions {
  return {
    ...svd,
    direction: config.direction,
    scale: config.scale,
    stableGamma: config.stable_gamma,
    variant: config.variant,
    normClip: config.norm_clip,
  };
}
