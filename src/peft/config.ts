// LoRA and LoRA-GA configuration with PEFT's field names, and the adapter_config.json mapping.
//
// Contract:
// - `LoraConfig` holds the fields this library implements, spelled as PEFT 0.21 spells them
//   (`r`, `lora_alpha`, `target_modules`, ...). `toAdapterConfigJson()` writes every key PEFT 0.21's
//   `LoraConfig.to_dict()` writes (checked against test/fixtures/peft/config-keys.json), with PEFT's
//   defaults for the features we do not implement; `fromAdapterConfigJson()` reads such a dict,
//   rejects features we cannot honour (DoRA, lora_bias, bias != "none", layers_to_transform, ...)
//   with an error naming the field, and ignores keys it does not know (PEFT adds keys over time).
// - `LoraGAConfig` adds the LoRA-GA options (docs/lora-ga-spec.md §3, §6, §7). Scale names are
//   the official fork's (stable | gd | unit | weightS); PEFT's (stable | gd_scale | unit |
//   weight_svd) are accepted and mapped. In adapter_config.json it appears as PEFT's `lora_ga_config` sub-dict (PEFT names).
// - Every validation error names the field and the value.

/** How A and B start (PEFT's `init_lora_weights`, plus "lora_one" which PEFT does not have). */
export type InitLoraWeights =
  | boolean
  | "gaussian"
  | "pissa"
  | `pissa_niter_${number}`
  | "olora"
  | "lora_ga"
  | "lora_one";

/** LoRA-GA direction: which SVD triplets go to A and which to B (docs/lora-ga-spec.md §6, §7). */
export type LoraGADirection = "ArB2r" | "A2rBr" | "ArBr" | "random";
/** LoRA-GA scale, official names (docs/lora-ga-spec.md §6). */
export type LoraGAScale = "stable" | "gd" | "unit" | "weightS";
/** "official": the fork that matches the paper (docs/lora-ga-spec.md §6); "peft": HF PEFT 0.21 (§7). */
export type LoraGAVariant = "official" | "peft";

const PEFT_SCALE_NAMES: Readonly<Record<LoraGAScale, string>> = {
  stable: "stable",
  gd: "gd_scale",
  unit: "unit",
  weightS: "weight_svd",
};
const SCALE_ALIASES: Readonly<Record<string, LoraGAScale>> = {
  stable: "stable",
  gd: "gd",
  gd_scale: "gd",
  unit: "unit",
  weightS: "weightS",
  weight_svd: "weightS",
};
const DIRECTIONS: readonly LoraGADirection[] = ["ArB2r", "A2rBr", "ArBr", "random"];

/** PEFT 0.21's value for every adapter_config.json key we do not model (LoraConfig.to_dict()). */
const PEFT_PASSIVE_DEFAULTS: Readonly<Record<string, unknown>> = {
  alora_invocation_tokens: null,
  arrow_config: null,
  auto_mapping: null,
  corda_config: null,
  ensure_weight_tying: false,
  eva_config: null,
  kasa_config: null,
  layer_replication: null,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_bias: false,
  megatron_config: null,
  megatron_core: "megatron.core",
  modules_to_save: null,
  monteclora_config: null,
  qalora_group_size: 16,
  target_parameters: null,
  trainable_token_indices: null,
  use_bdlora: null,
  use_dora: false,
  use_qalora: false,
  velora_config: null,
};

/**
 * Keys whose value must equal PEFT's default for us to load an adapter: a different value means a
 * feature this library does not implement.
 */
const UNSUPPORTED_IF_SET: readonly string[] = [
  "use_dora",
  "lora_bias",
  "use_qalora",
  "layers_to_transform",
  "layers_pattern",
  "layer_replication",
  "modules_to_save",
  "target_parameters",
  "trainable_token_indices",
  "alora_invocation_tokens",
  "arrow_config",
  "use_bdlora",
];

const PEFT_VERSION_WRITTEN = "0.21.0";

export interface LoraConfigInit {
  r?: number;
  lora_alpha?: number;
  lora_dropout?: number;
  target_modules?: readonly string[] | string | null;
  exclude_modules?: readonly string[] | string | null;
  fan_in_fan_out?: boolean;
  bias?: "none";
  use_rslora?: boolean;
  init_lora_weights?: InitLoraWeights;
  rank_pattern?: Readonly<Record<string, number>>;
  alpha_pattern?: Readonly<Record<string, number>>;
  task_type?: string | null;
  base_model_name_or_path?: string | null;
  revision?: string | null;
  inference_mode?: boolean;
  /** PEFT's `lora_ga_config` sub-dict, kept verbatim when read from a file. */
  lora_ga_config?: PeftLoraGAConfigJson | null;
  /** `{base_model_class, parent_library}` as PEFT writes it when task_type is null. */
  auto_mapping?: Readonly<Record<string, string>> | null;
}

/** PEFT 0.21's `LoraGAConfig` as it appears inside adapter_config.json. */
export interface PeftLoraGAConfigJson {
  direction: LoraGADirection;
  scale: string;
  stable_gamma: number;
}

function fail(field: string, message: string): never {
  throw new Error(`LoRA config: ${field} ${message}`);
}

function checkPositiveInt(field: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    fail(field, `must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function checkFinite(field: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v))
    fail(field, `must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function checkBool(field: string, v: unknown): boolean {
  if (typeof v !== "boolean") fail(field, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function checkTargets(field: string, v: unknown): readonly string[] | string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") {
    if (v.length === 0) fail(field, "must not be an empty string");
    try {
      new RegExp(v);
    } catch (e) {
      fail(
        field,
        `is not a valid regular expression (${JSON.stringify(v)}): ${(e as Error).message}`,
      );
    }
    return v;
  }
  if (Array.isArray(v) && v.every((s) => typeof s === "string" && s.length > 0))
    return Object.freeze([...v]);
  fail(
    field,
    `must be a regex string or a list of non-empty module names, got ${JSON.stringify(v)}`,
  );
}

function checkPattern(
  field: string,
  v: unknown,
  integer: boolean,
): Readonly<Record<string, number>> {
  if (v === undefined || v === null) return Object.freeze({});
  if (typeof v !== "object" || Array.isArray(v))
    fail(field, `must be an object of name -> number, got ${JSON.stringify(v)}`);
  const out: Record<string, number> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    out[k] = integer
      ? checkPositiveInt(`${field}[${JSON.stringify(k)}]`, val)
      : checkFinite(`${field}[${JSON.stringify(k)}]`, val);
  }
  return Object.freeze(out);
}

function checkInit(v: unknown): InitLoraWeights {
  if (typeof v === "boolean") return v;
  if (v === "gaussian" || v === "pissa" || v === "olora" || v === "lora_ga" || v === "lora_one")
    return v;
  if (typeof v === "string" && /^pissa_niter_[0-9]+$/.test(v)) return v as `pissa_niter_${number}`;
  fail(
    "init_lora_weights",
    `must be true, false, "gaussian", "pissa", "pissa_niter_<N>", "olora", "lora_ga" or "lora_one", got ${JSON.stringify(v)}`,
  );
}

/** A LoRA configuration (PEFT's LoraConfig fields that this library implements). */
export class LoraConfig {
  readonly peft_type = "LORA" as const;
  readonly r: number;
  readonly lora_alpha: number;
  readonly lora_dropout: number;
  readonly target_modules: readonly string[] | string | null;
  readonly exclude_modules: readonly string[] | string | null;
  readonly fan_in_fan_out: boolean;
  readonly bias: "none";
  readonly use_rslora: boolean;
  readonly init_lora_weights: InitLoraWeights;
  readonly rank_pattern: Readonly<Record<string, number>>;
  readonly alpha_pattern: Readonly<Record<string, number>>;
  readonly task_type: string | null;
  readonly base_model_name_or_path: string | null;
  readonly revision: string | null;
  readonly inference_mode: boolean;
  readonly lora_ga_config: PeftLoraGAConfigJson | null;
  readonly auto_mapping: Readonly<Record<string, string>> | null;

  /** Defaults are PEFT 0.21's: r 8, lora_alpha 8, dropout 0, init true, bias "none". */
  constructor(init: LoraConfigInit = {}) {
    this.r = checkPositiveInt("r", init.r ?? 8);
    this.lora_alpha = checkFinite("lora_alpha", init.lora_alpha ?? 8);
    const p = checkFinite("lora_dropout", init.lora_dropout ?? 0);
    if (p < 0 || p >= 1) fail("lora_dropout", `must be in [0, 1), got ${p}`);
    this.lora_dropout = p;
    this.target_modules = checkTargets("target_modules", init.target_modules);
    this.exclude_modules = checkTargets("exclude_modules", init.exclude_modules);
    this.fan_in_fan_out = checkBool("fan_in_fan_out", init.fan_in_fan_out ?? false);
    const bias = init.bias ?? "none";
    if (bias !== "none")
      fail("bias", `must be "none" (bias training is not supported), got ${JSON.stringify(bias)}`);
    this.bias = bias;
    this.use_rslora = checkBool("use_rslora", init.use_rslora ?? false);
    this.init_lora_weights = checkInit(init.init_lora_weights ?? true);
    this.rank_pattern = checkPattern("rank_pattern", init.rank_pattern, true);
    this.alpha_pattern = checkPattern("alpha_pattern", init.alpha_pattern, false);
    this.task_type = init.task_type ?? null;
    this.base_model_name_or_path = init.base_model_name_or_path ?? null;
    this.revision = init.revision ?? null;
    this.inference_mode = checkBool("inference_mode", init.inference_mode ?? false);
    this.lora_ga_config = init.lora_ga_config ?? null;
    this.auto_mapping = init.auto_mapping ?? null;
  }

  /** The fields as a LoraConfigInit (for copies with changes). */
  toInit(): LoraConfigInit {
    return {
      r: this.r,
      lora_alpha: this.lora_alpha,
      lora_dropout: this.lora_dropout,
      target_modules: this.target_modules,
      exclude_modules: this.exclude_modules,
      fan_in_fan_out: this.fan_in_fan_out,
      bias: this.bias,
      use_rslora: this.use_rslora,
      init_lora_weights: this.init_lora_weights,
      rank_pattern: this.rank_pattern,
      alpha_pattern: this.alpha_pattern,
      task_type: this.task_type,
      base_model_name_or_path: this.base_model_name_or_path,
      revision: this.revision,
      inference_mode: this.inference_mode,
      lora_ga_config: this.lora_ga_config,
      auto_mapping: this.auto_mapping,
    };
  }

  /** A copy with some fields replaced (validated again). */
  with(changes: LoraConfigInit): LoraConfig {
    return new LoraConfig({ ...this.toInit(), ...changes });
  }

  /**
   * The adapter_config.json object, keys sorted as PEFT writes them (json.dump(sort_keys=True)).
   * "lora_one" is written as `true`: PEFT does not know it, and a LoRA-One adapter without a base
   * offset is an ordinary LoRA on the original base (how it was made is in the safetensors metadata).
   */
  toAdapterConfigJson(): Record<string, unknown> {
    const own: Record<string, unknown> = {
      alpha_pattern: { ...this.alpha_pattern },
      base_model_name_or_path: this.base_model_name_or_path,
      bias: this.bias,
      exclude_modules: copyTargets(this.exclude_modules),
      fan_in_fan_out: this.fan_in_fan_out,
      inference_mode: this.inference_mode,
      init_lora_weights: this.init_lora_weights === "lora_one" ? true : this.init_lora_weights,
      lora_alpha: this.lora_alpha,
      lora_dropout: this.lora_dropout,
      lora_ga_config: this.lora_ga_config === null ? null : { ...this.lora_ga_config },
      peft_type: this.peft_type,
      peft_version: PEFT_VERSION_WRITTEN,
      r: this.r,
      rank_pattern: { ...this.rank_pattern },
      revision: this.revision,
      target_modules: copyTargets(this.target_modules),
      task_type: this.task_type,
      use_rslora: this.use_rslora,
    };
    const all: Record<string, unknown> = { ...structuredClone(PEFT_PASSIVE_DEFAULTS), ...own };
    all.auto_mapping = this.auto_mapping === null ? null : { ...this.auto_mapping };
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(all).sort()) sorted[k] = all[k];
    return sorted;
  }

  /** Parses an adapter_config.json object; `what` names the file in errors. */
  static fromAdapterConfigJson(json: unknown, what = "adapter_config.json"): LoraConfig {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new Error(`${what}: expected a JSON object`);
    }
    const o = json as Record<string, unknown>;
    const peftType = o.peft_type;
    if (peftType !== "LORA") {
      throw new Error(`${what}: peft_type must be "LORA", got ${JSON.stringify(peftType)}`);
    }
    for (const key of UNSUPPORTED_IF_SET) {
      if (key in o && JSON.stringify(o[key]) !== JSON.stringify(PEFT_PASSIVE_DEFAULTS[key])) {
        throw new Error(
          `${what}: ${key} = ${JSON.stringify(o[key])} is not supported by this library`,
        );
      }
    }
    try {
      return new LoraConfig({
        ...(o.r !== undefined && { r: o.r as number }),
        ...(o.lora_alpha !== undefined && { lora_alpha: o.lora_alpha as number }),
        ...(o.lora_dropout !== undefined && { lora_dropout: o.lora_dropout as number }),
        target_modules: (o.target_modules ?? null) as string[] | string | null,
        exclude_modules: (o.exclude_modules ?? null) as string[] | string | null,
        ...(o.fan_in_fan_out !== undefined && { fan_in_fan_out: o.fan_in_fan_out as boolean }),
        ...(o.bias !== undefined && { bias: o.bias as "none" }),
        ...(o.use_rslora !== undefined && { use_rslora: o.use_rslora as boolean }),
        ...(o.init_lora_weights !== undefined && {
          init_lora_weights: o.init_lora_weights as InitLoraWeights,
        }),
        rank_pattern: (o.rank_pattern ?? {}) as Record<string, number>,
        alpha_pattern: (o.alpha_pattern ?? {}) as Record<string, number>,
        task_type: (o.task_type ?? null) as string | null,
        base_model_name_or_path: (o.base_model_name_or_path ?? null) as string | null,
        revision: (o.revision ?? null) as string | null,
        ...(o.inference_mode !== undefined && { inference_mode: o.inference_mode as boolean }),
        lora_ga_config: parsePeftLoraGAJson(o.lora_ga_config),
        auto_mapping: (o.auto_mapping ?? null) as Record<string, string> | null,
      });
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message}`);
    }
  }
}

function copyTargets(t: readonly string[] | string | null): string[] | string | null {
  return t === null || typeof t === "string" ? t : [...t];
}

function parsePeftLoraGAJson(v: unknown): PeftLoraGAConfigJson | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== "object" || Array.isArray(v))
    fail("lora_ga_config", `must be an object, got ${JSON.stringify(v)}`);
  const o = v as Record<string, unknown>;
  const direction = o.direction ?? "ArB2r";
  if (!DIRECTIONS.includes(direction as LoraGADirection)) {
    fail(
      "lora_ga_config.direction",
      `must be one of ${DIRECTIONS.join(", ")}, got ${JSON.stringify(direction)}`,
    );
  }
  const scale = normaliseScale("lora_ga_config.scale", o.scale ?? "stable");
  return {
    direction: direction as LoraGADirection,
    scale: PEFT_SCALE_NAMES[scale],
    stable_gamma: checkFinite("lora_ga_config.stable_gamma", o.stable_gamma ?? 16),
  };
}

function normaliseScale(field: string, v: unknown): LoraGAScale {
  const s = typeof v === "string" ? SCALE_ALIASES[v] : undefined;
  if (s === undefined) {
    fail(
      field,
      `must be one of stable, gd (gd_scale), unit, weightS (weight_svd), got ${JSON.stringify(v)}`,
    );
  }
  return s;
}

export interface LoraGAConfigInit extends LoraConfigInit {
  direction?: LoraGADirection;
  /** Official names; PEFT's gd_scale / weight_svd are accepted and mapped. */
  scale?: LoraGAScale | "gd_scale" | "weight_svd";
  stable_gamma?: number;
  variant?: LoraGAVariant;
  /** Official fork's norm_clip (docs/lora-ga-spec.md §6.3), off by default; official variant only. */
  norm_clip?: boolean;
}

/** LoRA-GA configuration: LoraConfig fields plus the LoRA-GA options; init_lora_weights is "lora_ga". */
export class LoraGAConfig extends LoraConfig {
  readonly direction: LoraGADirection;
  readonly scale: LoraGAScale;
  readonly stable_gamma: number;
  readonly variant: LoraGAVariant;
  readonly norm_clip: boolean;

  constructor(init: LoraGAConfigInit = {}) {
    const direction = init.direction ?? "ArB2r";
    if (!DIRECTIONS.includes(direction)) {
      fail(
        "direction",
        `must be one of ${DIRECTIONS.join(", ")}, got ${JSON.stringify(direction)}`,
      );
    }
    const scale = normaliseScale("scale", init.scale ?? "stable");
    const gamma = checkFinite("stable_gamma", init.stable_gamma ?? 16);
    if (!(gamma > 0)) fail("stable_gamma", `must be > 0, got ${gamma}`);
    if (init.init_lora_weights !== undefined && init.init_lora_weights !== "lora_ga") {
      fail(
        "init_lora_weights",
        `must be "lora_ga" in a LoraGAConfig, got ${JSON.stringify(init.init_lora_weights)}`,
      );
    }
    super({
      ...init,
      init_lora_weights: "lora_ga",
      lora_ga_config: { direction, scale: PEFT_SCALE_NAMES[scale], stable_gamma: gamma },
    });
    const variant = init.variant ?? "official";
    if (variant !== "official" && variant !== "peft") {
      fail("variant", `must be "official" or "peft", got ${JSON.stringify(variant)}`);
    }
    const normClip = checkBool("norm_clip", init.norm_clip ?? false);
    if (normClip && variant !== "official")
      fail("norm_clip", "exists only in the official variant");
    this.direction = direction;
    this.scale = scale;
    this.stable_gamma = gamma;
    this.variant = variant;
    this.norm_clip = normClip;
  }

  /** A LoraGAConfig from a LoraConfig whose init_lora_weights is "lora_ga" (e.g. read from a file). */
  static fromLoraConfig(
    c: LoraConfig,
    extra: Pick<LoraGAConfigInit, "variant" | "norm_clip"> = {},
  ): LoraGAConfig {
    const ga = c.lora_ga_config;
    return new LoraGAConfig({
      ...c.toInit(),
      ...(ga !== null && {
        direction: ga.direction,
        scale: normaliseScale("lora_ga_config.scale", ga.scale),
        stable_gamma: ga.stable_gamma,
      }),
      ...extra,
    });
  }
}

/** PEFT's per-module rank/alpha lookup key (peft.utils.other.get_pattern_key): `(.*\.)?(key)$` from the start. */
function patternKey(keys: Iterable<string>, path: string): string | null {
  for (const key of keys) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(path)) return key;
  }
  return null;
}

/** r and alpha of one module after rank_pattern / alpha_pattern (PEFT LoraModel._create_and_replace). */
export function moduleRankAlpha(config: LoraConfig, path: string): { r: number; alpha: number } {
  const rk = patternKey(Object.keys(config.rank_pattern), path);
  const ak = patternKey(Object.keys(config.alpha_pattern), path);
  return {
    r: rk === null ? config.r : config.rank_pattern[rk],
    alpha: ak === null ? config.lora_alpha : config.alpha_pattern[ak],
  };
}

/** LoRA scaling s: alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT LoraLayer.update_layer; arXiv 2312.03732). */
export function loraScaling(alpha: number, r: number, useRslora: boolean): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}
