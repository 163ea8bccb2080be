// config.json -> validated, typed model configuration.
//
// Contract: readModelConfig(dir) / parseModelConfig(raw) return a ModelConfig whose fields keep the
// Hugging Face names (snake_case, as in the JSON). Recognized model types (llama, qwen2, mistral,
// qwen3, smollm3, phi3, gpt2, gemma3_text, t5) are validated field by field with transformers' defaults for absent optional fields; any
// other model_type is returned unvalidated as { recognized: false } — whether it is supported is
// the model registry's decision, not this module's. Every config object keeps the parsed JSON as
// `raw`. Errors are one line naming the file and field:
//   config.json: "hidden_size" must be a positive integer, got "abc"
//
// Defaults follow transformers 5.18's configuration classes (models/<type>/configuration_<type>.py)
// and RotaryEmbeddingConfigMixin (modeling_rope_utils.py):
// - llama/qwen2/mistral: num_key_value_heads = num_attention_heads, head_dim = hidden_size /
//   num_attention_heads, tie_word_embeddings = false, hidden_act = "silu", rope_theta = 10000.
// - RoPE: transformers 4.x files store `rope_theta` and `rope_scaling` at the top level;
//   transformers 5 files store both in `rope_parameters` ({rope_type, rope_theta, factor, ...});
//   both are accepted, `rope_type` may be spelled `type` (older files).
// - qwen2 always has q/k/v biases (Qwen2Attention: bias=True) and no o_proj bias; llama and
//   mistral take `attention_bias` (default false; mistral has none) for q/k/v/o.
// - qwen3: head_dim defaults to 128 (not hidden_size / heads), attention_bias on q/k/v/o, per-head
//   q_norm / k_norm (qk_norm); sliding_window only when use_sliding_window.
// - smollm3: rope_theta 2000000, tie_word_embeddings = true, attention_bias on q/k/v/o, mlp_bias;
//   no_rope_layers[l] is 1 where layer l APPLIES RoPE (0: no position encoding), by default every
//   no_rope_layer_interval-th layer (4) has none (rope_layers here: true where RoPE applies).
// - phi3: fused qkv_proj and gate_up_proj (fused_projections), no biases, partial_rotary_factor
//   (top level or in the rope parameters, default 1), rope_type "longrope" (old names "su", "yarn")
//   whose original_max_position_embeddings is the top-level field (default 4096), whose factor
//   defaults to max_position_embeddings / original_max_position_embeddings and whose
//   attention_factor defaults to sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1)
//   (Phi3Config.convert_rope_params_to_dict, _compute_longrope_parameters).
// - gpt2: n_inner null -> 4 * n_embd, tie_word_embeddings = true, activation "gelu_new".
// - gemma3_text: Gemma3TextConfig's defaults (head_dim 256, query_pre_attn_scalar 256,
//   sliding_window 4096, tied embeddings, pad_token_id 0, every 6th layer full_attention) and its
//   per-layer-type RoPE (readGemmaRope). attn_logit_softcapping is not read: Gemma3Attention
//   never applies it.
// - t5: T5Config's defaults (d_kv 64, num_decoder_layers = num_layers, 32 buckets, max_distance 128,
//   feed_forward_proj "relu"; "gated-gelu" means gelu_new, T5Config.__post_init__). The head's
//   d_model^-0.5 rescale: `scale_decoder_outputs` when the file has it (transformers 5 writes it),
//   else tie_word_embeddings != false (what transformers 5 derives from a T5 v1.0 / v1.1 file).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { isPlainObject, parseJsonStrict } from "./json.js";

type RopeType = "default" | "linear" | "llama3" | "longrope";

/** RoPE scaling beyond the default rotary embedding; null in LlamaFamilyConfig when none. */
export interface RopeScaling {
  rope_type: Exclude<RopeType, "default">;
  factor: number;
  /** llama3 only (Llama 3.1 frequency-dependent scaling). */
  low_freq_factor?: number;
  high_freq_factor?: number;
  /** llama3 and longrope. */
  original_max_position_embeddings?: number;
  /** longrope only (phi3): per-frequency divisors (rotary dim / 2) and the cos/sin scale. */
  short_factor?: number[];
  long_factor?: number[];
  attention_factor?: number;
}

export interface LlamaFamilyConfig {
  model_type: "llama" | "qwen2" | "mistral" | "qwen3" | "smollm3" | "phi3";
  recognized: true;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  /** Bias on q/k/v (and o for llama) projections. Always true for qwen2 (q/k/v only). */
  attention_bias: boolean;
  /** Bias on o_proj: llama follows attention_bias, qwen2 and mistral have none. */
  o_proj_bias: boolean;
  mlp_bias: boolean;
  hidden_act: string;
  /** Sliding-window attention width, or null for full attention (mistral, qwen2 with use_sliding_window). */
  sliding_window: number | null;
  /** qwen3: RMSNorm over each head's D values of q and k (q_norm, k_norm) before RoPE. */
  qk_norm: boolean;
  /** Per layer: true where RoPE is applied (all but smollm3's no_rope_layers zeros). */
  rope_layers: boolean[];
  /** Fraction of head_dim that RoPE rotates (phi3's partial_rotary_factor; 1 elsewhere). */
  partial_rotary_factor: number;
  /** phi3: one qkv_proj (q | k | v rows) and one gate_up_proj (gate | up rows). */
  fused_projections: boolean;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  raw: Readonly<Record<string, unknown>>;
}

export interface Gpt2Config {
  model_type: "gpt2";
  recognized: true;
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; 4 * n_embd where the file has null. */
  n_inner: number;
  layer_norm_epsilon: number;
  activation_function: string;
  tie_word_embeddings: boolean;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  reorder_and_upcast_attn: boolean;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  raw: Readonly<Record<string, unknown>>;
}

/** One RoPE setting: base frequency and optional scaling (null for the default rotary embedding). */
export interface RopeParams {
  rope_theta: number;
  rope_scaling: RopeScaling | null;
}

/** Attention kind of one Gemma 3 layer (config.layer_types). */
export type GemmaLayerType = "sliding_attention" | "full_attention";

export interface Gemma3TextConfig {
  model_type: "gemma3_text";
  recognized: true;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Independent of hidden_size (Gemma 3 270M: hidden 640, 4 heads of 256). */
  head_dim: number;
  rms_norm_eps: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  /** Bias on q/k/v/o. */
  attention_bias: boolean;
  /** MLP activation of the gate: "tanh" (gelu_pytorch_tanh, gelu_new) or "none" (exact gelu). */
  gelu_approximate: "tanh" | "none";
  /** Attention scores are scaled by query_pre_attn_scalar^-0.5 (not head_dim^-0.5). */
  query_pre_attn_scalar: number;
  /** Keys a sliding_attention layer's query sees: itself and the sliding_window - 1 before it. */
  sliding_window: number;
  /** One entry per layer. */
  layer_types: GemmaLayerType[];
  /** RoPE of full_attention layers (rope_theta, rope_scaling). */
  rope_full: RopeParams;
  /** RoPE of sliding_attention layers (rope_local_base_freq). */
  rope_sliding: RopeParams;
  /** logits = cap * tanh(logits / cap) when set. */
  final_logit_softcapping: number | null;
  /** nn.Embedding's padding_idx: that row of embed_tokens gets no gradient from the embedding. */
  pad_token_id: number | null;
  bos_token_id: number | null;
  eos_token_id: number | number[] | null;
  raw: Readonly<Record<string, unknown>>;
}

/** T5 / T5 v1.1 (T5ForConditionalGeneration): an encoder-decoder (models/t5.ts). */
export interface T5Config {
  model_type: "t5";
  recognized: true;
  vocab_size: number;
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_layers: number;
  num_decoder_layers: number;
  num_heads: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance: number;
  layer_norm_epsilon: number;
  feed_forward_proj: string;
  /** The FFN activation (feed_forward_proj's last part; "gated-gelu" is gelu_new). */
  dense_act_fn: T5Activation;
  /** wi_0 / wi_1 (act(wi_0 x) * wi_1 x) instead of one wi. */
  is_gated_act: boolean;
  /** Multiply the decoder's output by d_model^-0.5 before the lm_head (T5 v1.0's tied head). */
  scale_decoder_outputs: boolean;
  pad_token_id: number;
  eos_token_id: number | number[] | null;
  /** The decoder's first input token (T5: the pad id). */
  decoder_start_token_id: number;
  raw: Readonly<Record<string, unknown>>;
}

/** T5's supported FFN activations (transformers' ACT2FN names). */
export type T5Activation = "relu" | "gelu_new" | "gelu";
const T5_ACTIVATIONS: readonly T5Activation[] = ["relu", "gelu_new", "gelu"];

/** A model_type this module does not validate; the registry reports whether it is supported. */
interface UnrecognizedModelConfig {
  model_type: string;
  recognized: false;
  raw: Readonly<Record<string, unknown>>;
}

export type KnownModelConfig = LlamaFamilyConfig | Gpt2Config | Gemma3TextConfig | T5Config;
export type ModelConfig = KnownModelConfig | UnrecognizedModelConfig;

const CONFIG_FILE_NAME = "config.json";
/** Bound on config.json size: real ones are a few KiB. */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

const show = (value: unknown): string => {
  const text = value === undefined ? "nothing" : (JSON.stringify(value) ?? String(value));
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** Reads fields of one JSON object, naming `file` and the (dotted) field in every error. */
class Fields {
  private readonly file: string;
  private readonly obj: Record<string, unknown>;
  private readonly prefix: string;

  constructor(file: string, obj: Record<string, unknown>, prefix = "") {
    this.file = file;
    this.obj = obj;
    this.prefix = prefix;
  }

  has(key: string): boolean {
    return Object.hasOwn(this.obj, key) && this.obj[key] !== null;
  }
  get(key: string): unknown {
    return Object.hasOwn(this.obj, key) ? this.obj[key] : undefined;
  }
  fail(key: string, expectation: string): never {
    const shown = Object.hasOwn(this.obj, key) ? `got ${show(this.obj[key])}` : "but it is missing";
    throw new Error(`${this.file}: "${this.prefix}${key}" must be ${expectation}, ${shown}`);
  }

  positiveInt(key: string, fallback?: number): number {
    if (!this.has(key) && fallback !== undefined) return fallback;
    const v = this.get(key);
    if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
    return this.fail(key, "a positive integer");
  }
  positiveNumber(key: string, fallback?: number): number {
    if (!this.has(key) && fallback !== undefined) return fallback;
    const v = this.get(key);
    if (typeof v === "number" && Number.isFinite(v) && v > 0) return v;
    return this.fail(key, "a positive number");
  }
  boolean(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const v = this.get(key);
    if (typeof v === "boolean") return v;
    return this.fail(key, "true or false");
  }
  string(key: string, fallback?: string): string {
    if (!this.has(key) && fallback !== undefined) return fallback;
    const v = this.get(key);
    if (typeof v === "string" && v.length > 0) return v;
    return this.fail(key, "a non-empty string");
  }
  tokenId(key: string): number | null {
    if (!this.has(key)) return null;
    const v = this.get(key);
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
    return this.fail(key, "a non-negative integer or null");
  }
  tokenIds(key: string): number | number[] | null {
    const v = this.get(key);
    if (Array.isArray(v)) {
      if (v.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0))
        return v as number[];
      return this.fail(key, "a token id or a list of token ids");
    }
    return this.tokenId(key);
  }
  numberList(key: string, length: number): number[] {
    const v = this.get(key);
    if (
      Array.isArray(v) &&
      v.length === length &&
      v.every((x) => typeof x === "number" && Number.isFinite(x) && x > 0)
    )
      return v as number[];
    return this.fail(key, `a list of ${length} positive numbers`);
  }
  object(key: string): Fields | null {
    if (!this.has(key)) return null;
    const v = this.get(key);
    if (isPlainObject(v)) return new Fields(this.file, v, `${this.prefix}${key}.`);
    return this.fail(key, "an object or null");
  }
}

/** phi3 accepts only these (plus the old names "su" and "yarn" for longrope); others the first three. */
const SUPPORTED_ROPE_TYPES: readonly RopeType[] = ["default", "linear", "llama3"];
const PHI3_ROPE_TYPES: readonly RopeType[] = ["default", "longrope"];

/** The rope parameters object (either layout; see the header comment), or null. */
function ropeParams(f: Fields): Fields | null {
  // transformers: `rope_parameters = rope_scaling or rope_parameters` (convert_rope_params_to_dict)
  return f.object(f.has("rope_scaling") ? "rope_scaling" : "rope_parameters");
}

/** rope_theta and rope_scaling from either layout (see the header comment). */
function readRope(
  f: Fields,
  maxPositions: number,
  modelType: LlamaFamilyConfig["model_type"],
  rotaryDim: number,
): { rope_theta: number; rope_scaling: RopeScaling | null } {
  const params = ropeParams(f);
  const theta = params?.has("rope_theta")
    ? params.positiveNumber("rope_theta")
    : f.positiveNumber("rope_theta", DEFAULT_ROPE_THETA[modelType]);
  if (params === null) return { rope_theta: theta, rope_scaling: null };
  const key = f.has("rope_scaling") ? "rope_scaling" : "rope_parameters";
  const rawParams = f.get(key) as Record<string, unknown>;
  const nested = Object.keys(rawParams).find((k) => isPlainObject(rawParams[k]));
  if (nested !== undefined)
    params.fail(nested, "a scalar (per-layer-type RoPE parameters are not supported)");
  const phi3Longrope = modelType === "phi3" ? () => longrope(f, params, rotaryDim) : undefined;
  return { rope_theta: theta, rope_scaling: ropeScalingOf(params, maxPositions, phi3Longrope) };
}

/**
 * The scaling of one RoPE parameter object ({rope_type, factor, ...}); null for "default".
 * Phi-3 passes `phi3Longrope`, which reads its LongRoPE fields (and accepts its type names).
 */
function ropeScalingOf(
  params: Fields,
  maxPositions: number,
  phi3Longrope?: () => RopeScaling,
): RopeScaling | null {
  const phi3 = phi3Longrope !== undefined;
  const typeKey = params.has("rope_type") ? "rope_type" : "type";
  let ropeType = params.string(typeKey, "default");
  const supported = phi3 ? PHI3_ROPE_TYPES : SUPPORTED_ROPE_TYPES;
  if (phi3 && (ropeType === "su" || ropeType === "yarn")) ropeType = "longrope";
  if (!(supported as readonly string[]).includes(ropeType)) {
    params.fail(
      typeKey,
      `one of ${supported.join(", ")} (per-layer or other RoPE variants are not supported)`,
    );
  }
  if (ropeType === "default") return null;
  if (ropeType === "longrope" && phi3Longrope) return phi3Longrope();
  const scaling: RopeScaling = {
    rope_type: ropeType as RopeScaling["rope_type"],
    factor: params.positiveNumber("factor"),
  };
  if (ropeType === "llama3") {
    scaling.low_freq_factor = params.positiveNumber("low_freq_factor");
    scaling.high_freq_factor = params.positiveNumber("high_freq_factor");
    scaling.original_max_position_embeddings = params.positiveInt(
      "original_max_position_embeddings",
      maxPositions,
    );
    if (scaling.high_freq_factor <= scaling.low_freq_factor) {
      params.fail("high_freq_factor", `greater than low_freq_factor (${scaling.low_freq_factor})`);
    }
  }
  return scaling;
}

/** Phi-3's LongRoPE parameters with transformers' defaults (see the header comment). */
function longrope(f: Fields, params: Fields, rotaryDim: number): RopeScaling {
  const original = f.positiveInt("original_max_position_embeddings", 4096);
  const factor = params.has("factor")
    ? params.positiveNumber("factor")
    : f.positiveInt("max_position_embeddings", DEFAULT_MAX_POSITIONS.phi3) / original;
  const attentionFactor = params.has("attention_factor")
    ? params.positiveNumber("attention_factor")
    : factor <= 1
      ? 1
      : Math.sqrt(1 + Math.log(factor) / Math.log(original));
  return {
    rope_type: "longrope",
    factor,
    original_max_position_embeddings: original,
    short_factor: params.numberList("short_factor", rotaryDim / 2),
    long_factor: params.numberList("long_factor", rotaryDim / 2),
    attention_factor: attentionFactor,
  };
}

const DEFAULT_MAX_POSITIONS: Readonly<Record<LlamaFamilyConfig["model_type"], number>> = {
  llama: 2048,
  qwen2: 32768,
  mistral: 4096 * 32,
  qwen3: 32768,
  smollm3: 32768,
  phi3: 4096,
};

const DEFAULT_ROPE_THETA: Readonly<Record<LlamaFamilyConfig["model_type"], number>> = {
  llama: 10000,
  qwen2: 10000,
  mistral: 10000,
  qwen3: 10000,
  smollm3: 2000000,
  phi3: 10000,
};

/** Per layer, whether RoPE applies: smollm3's no_rope_layers (1 = RoPE), all true elsewhere. */
function ropeLayers(
  f: Fields,
  modelType: LlamaFamilyConfig["model_type"],
  layers: number,
): boolean[] {
  if (modelType !== "smollm3" || !f.has("no_rope_layers")) {
    const interval = modelType === "smollm3" ? f.positiveInt("no_rope_layer_interval", 4) : 0;
    return Array.from({ length: layers }, (_, l) => interval === 0 || (l + 1) % interval !== 0);
  }
  const v = f.get("no_rope_layers");
  if (!Array.isArray(v) || v.length !== layers || !v.every((x) => x === 0 || x === 1))
    f.fail("no_rope_layers", `a list of ${layers} zeros and ones`);
  return (v as number[]).map((x) => x === 1);
}

function parseLlamaFamily(
  file: string,
  raw: Record<string, unknown>,
  modelType: LlamaFamilyConfig["model_type"],
): LlamaFamilyConfig {
  const f = new Fields(file, raw);
  const hidden = f.positiveInt("hidden_size");
  const heads = f.positiveInt("num_attention_heads");
  const kvHeads = f.positiveInt("num_key_value_heads", heads);
  const layers = f.positiveInt("num_hidden_layers");
  if (heads % kvHeads !== 0)
    f.fail("num_key_value_heads", `a divisor of num_attention_heads (${heads})`);
  const headDimDefault = modelType === "qwen3" ? 128 : Math.floor(hidden / heads);
  if (!f.has("head_dim") && modelType !== "qwen3" && hidden % heads !== 0)
    f.fail("hidden_size", `a multiple of num_attention_heads (${heads}) when head_dim is absent`);
  const headDim = f.positiveInt("head_dim", headDimDefault);
  const maxPositions = f.positiveInt("max_position_embeddings", DEFAULT_MAX_POSITIONS[modelType]);
  let partialRotary = 1;
  if (modelType === "phi3") {
    const params = ropeParams(f);
    partialRotary = params?.has("partial_rotary_factor")
      ? params.positiveNumber("partial_rotary_factor")
      : f.positiveNumber("partial_rotary_factor", 1);
    const rotaryDim = Math.floor(headDim * partialRotary);
    if (partialRotary > 1 || rotaryDim === 0 || rotaryDim % 2 !== 0)
      f.fail(
        "partial_rotary_factor",
        `at most 1, giving an even rotary dim of head_dim ${headDim}`,
      );
  }
  const attentionBias =
    modelType === "qwen2"
      ? true
      : modelType === "mistral" || modelType === "phi3"
        ? false
        : f.boolean("attention_bias", false);
  let slidingWindow: number | null = null;
  if (
    modelType === "mistral" ||
    modelType === "phi3" ||
    (modelType !== "llama" && f.boolean("use_sliding_window", false))
  ) {
    slidingWindow = f.has("sliding_window") ? f.positiveInt("sliding_window") : null;
  }
  const oBias = modelType === "llama" || modelType === "qwen3" || modelType === "smollm3";
  const mlpBias = modelType === "llama" || modelType === "smollm3";
  return {
    model_type: modelType,
    recognized: true,
    vocab_size: f.positiveInt("vocab_size"),
    hidden_size: hidden,
    intermediate_size: f.positiveInt("intermediate_size"),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: f.positiveNumber("rms_norm_eps", modelType === "phi3" ? 1e-5 : 1e-6),
    ...readRope(f, maxPositions, modelType, Math.floor(headDim * partialRotary)),
    max_position_embeddings: maxPositions,
    tie_word_embeddings: f.boolean("tie_word_embeddings", modelType === "smollm3"),
    attention_bias: attentionBias,
    o_proj_bias: oBias && attentionBias,
    mlp_bias: mlpBias ? f.boolean("mlp_bias", false) : false,
    hidden_act: f.string("hidden_act", "silu"),
    sliding_window: slidingWindow,
    qk_norm: modelType === "qwen3",
    rope_layers: ropeLayers(f, modelType, layers),
    partial_rotary_factor: partialRotary,
    fused_projections: modelType === "phi3",
    bos_token_id: f.tokenId("bos_token_id"),
    eos_token_id: f.tokenIds("eos_token_id"),
    raw,
  };
}

function parseGpt2(file: string, raw: Record<string, unknown>): Gpt2Config {
  const f = new Fields(file, raw);
  const embd = f.positiveInt("n_embd");
  const heads = f.positiveInt("n_head");
  if (embd % heads !== 0) f.fail("n_embd", `a multiple of n_head (${heads})`);
  return {
    model_type: "gpt2",
    recognized: true,
    vocab_size: f.positiveInt("vocab_size"),
    n_positions: f.positiveInt("n_positions"),
    n_embd: embd,
    n_layer: f.positiveInt("n_layer"),
    n_head: heads,
    n_inner: f.positiveInt("n_inner", 4 * embd),
    layer_norm_epsilon: f.positiveNumber("layer_norm_epsilon", 1e-5),
    activation_function: f.string("activation_function", "gelu_new"),
    tie_word_embeddings: f.boolean("tie_word_embeddings", true),
    scale_attn_weights: f.boolean("scale_attn_weights", true),
    scale_attn_by_inverse_layer_idx: f.boolean("scale_attn_by_inverse_layer_idx", false),
    reorder_and_upcast_attn: f.boolean("reorder_and_upcast_attn", false),
    bos_token_id: f.tokenId("bos_token_id"),
    eos_token_id: f.tokenIds("eos_token_id"),
    raw,
  };
}

const GEMMA_LAYER_TYPES: readonly GemmaLayerType[] = ["sliding_attention", "full_attention"];

/** Gemma3TextConfig's activation names -> the gelu kernel's approximation. */
const GEMMA_ACTIVATIONS: Readonly<Record<string, "tanh" | "none">> = {
  gelu_pytorch_tanh: "tanh",
  gelu_new: "tanh",
  gelu: "none",
};

/**
 * RoPE of both layer types. transformers 5 files: rope_parameters = {full_attention: {...},
 * sliding_attention: {...}}; older files: rope_theta + rope_scaling (full_attention layers) and
 * rope_local_base_freq (sliding ones). Defaults: 1e6 and 1e4 (Gemma3TextConfig.default_theta).
 */
function readGemmaRope(
  f: Fields,
  maxPositions: number,
): { rope_full: RopeParams; rope_sliding: RopeParams } {
  const perType = f.object("rope_parameters");
  const legacyScaling = f.object("rope_scaling");
  const one = (type: GemmaLayerType, theta: number): RopeParams => {
    const params = perType?.object(type) ?? null;
    if (perType !== null && params === null && perType.has("rope_theta"))
      perType.fail("rope_theta", "inside full_attention / sliding_attention for gemma3_text");
    const scalingFrom = params ?? (type === "full_attention" ? legacyScaling : null);
    return {
      rope_theta: params?.has("rope_theta") ? params.positiveNumber("rope_theta") : theta,
      rope_scaling: scalingFrom === null ? null : ropeScalingOf(scalingFrom, maxPositions),
    };
  };
  return {
    rope_full: one("full_attention", f.positiveNumber("rope_theta", 1_000_000)),
    rope_sliding: one("sliding_attention", f.positiveNumber("rope_local_base_freq", 10_000)),
  };
}

/** Gemma3TextConfig (transformers 5.18 configuration_gemma3.py) with its defaults. */
function parseGemma3Text(file: string, raw: Record<string, unknown>): Gemma3TextConfig {
  const f = new Fields(file, raw);
  const layers = f.positiveInt("num_hidden_layers");
  const heads = f.positiveInt("num_attention_heads");
  const kvHeads = f.positiveInt("num_key_value_heads", 4);
  if (heads % kvHeads !== 0)
    f.fail("num_key_value_heads", `a divisor of num_attention_heads (${heads})`);
  const maxPositions = f.positiveInt("max_position_embeddings", 131_072);
  if (f.boolean("use_bidirectional_attention", false))
    f.fail("use_bidirectional_attention", "false (bidirectional Gemma 3 is not supported)");
  const activationKey = f.has("hidden_activation") ? "hidden_activation" : "hidden_act";
  const activation = f.string(activationKey, "gelu_pytorch_tanh");
  if (!Object.hasOwn(GEMMA_ACTIVATIONS, activation))
    f.fail(activationKey, `one of ${Object.keys(GEMMA_ACTIVATIONS).join(", ")}`);
  let layerTypes: GemmaLayerType[];
  if (f.has("layer_types")) {
    const v = f.get("layer_types");
    if (
      !Array.isArray(v) ||
      v.length !== layers ||
      !v.every((t) => (GEMMA_LAYER_TYPES as readonly unknown[]).includes(t))
    )
      f.fail("layer_types", `a list of ${layers} of ${GEMMA_LAYER_TYPES.join(" / ")}`);
    layerTypes = v as GemmaLayerType[];
  } else {
    // Gemma3TextConfig.__post_init__: every sliding_window_pattern-th layer is global
    const pattern = f.positiveInt("sliding_window_pattern", 6);
    layerTypes = Array.from({ length: layers }, (_, i) =>
      (i + 1) % pattern !== 0 ? "sliding_attention" : "full_attention",
    );
  }
  const softcap = f.has("final_logit_softcapping")
    ? f.positiveNumber("final_logit_softcapping")
    : null;
  return {
    model_type: "gemma3_text",
    recognized: true,
    vocab_size: f.positiveInt("vocab_size"),
    hidden_size: f.positiveInt("hidden_size"),
    intermediate_size: f.positiveInt("intermediate_size"),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: f.positiveInt("head_dim", 256),
    rms_norm_eps: f.positiveNumber("rms_norm_eps", 1e-6),
    max_position_embeddings: maxPositions,
    tie_word_embeddings: f.boolean("tie_word_embeddings", true),
    attention_bias: f.boolean("attention_bias", false),
    gelu_approximate: GEMMA_ACTIVATIONS[activation],
    query_pre_attn_scalar: f.positiveNumber("query_pre_attn_scalar", 256),
    sliding_window: f.positiveInt("sliding_window", 4096),
    layer_types: layerTypes,
    ...readGemmaRope(f, maxPositions),
    final_logit_softcapping: softcap,
    pad_token_id: Object.hasOwn(raw, "pad_token_id") ? f.tokenId("pad_token_id") : 0,
    bos_token_id: Object.hasOwn(raw, "bos_token_id") ? f.tokenId("bos_token_id") : 2,
    eos_token_id: Object.hasOwn(raw, "eos_token_id") ? f.tokenIds("eos_token_id") : 1,
    raw,
  };
}

/** T5Config (transformers 5.18 configuration_t5.py) with its defaults. */
function parseT5(file: string, raw: Record<string, unknown>): T5Config {
  const f = new Fields(file, raw);
  const layers = f.positiveInt("num_layers", 6);
  const proj = f.string("feed_forward_proj", "relu");
  const parts = proj.split("-");
  const gated = parts.length === 2 && parts[0] === "gated";
  if (parts.length > 2 || (parts.length === 2 && !gated))
    f.fail("feed_forward_proj", 'of the form "ACT" or "gated-ACT"');
  const act = proj === "gated-gelu" ? "gelu_new" : parts[parts.length - 1];
  if (!(T5_ACTIVATIONS as readonly string[]).includes(act))
    f.fail("feed_forward_proj", `built from one of ${T5_ACTIVATIONS.join(", ")}`);
  const pad = Object.hasOwn(raw, "pad_token_id") ? f.tokenId("pad_token_id") : 0;
  if (pad === null) return f.fail("pad_token_id", "a token id (T5 pads decoder inputs with it)");
  const start = f.tokenId("decoder_start_token_id") ?? pad;
  const scale = f.has("scale_decoder_outputs")
    ? f.boolean("scale_decoder_outputs", true)
    : f.boolean("tie_word_embeddings", true);
  return {
    model_type: "t5",
    recognized: true,
    vocab_size: f.positiveInt("vocab_size", 32128),
    d_model: f.positiveInt("d_model", 512),
    d_kv: f.positiveInt("d_kv", 64),
    d_ff: f.positiveInt("d_ff", 2048),
    num_layers: layers,
    num_decoder_layers: f.positiveInt("num_decoder_layers", layers),
    num_heads: f.positiveInt("num_heads", 8),
    relative_attention_num_buckets: f.positiveInt("relative_attention_num_buckets", 32),
    relative_attention_max_distance: f.positiveInt("relative_attention_max_distance", 128),
    layer_norm_epsilon: f.positiveNumber("layer_norm_epsilon", 1e-6),
    feed_forward_proj: proj,
    dense_act_fn: act as T5Activation,
    is_gated_act: gated,
    scale_decoder_outputs: scale,
    pad_token_id: pad,
    eos_token_id: Object.hasOwn(raw, "eos_token_id") ? f.tokenIds("eos_token_id") : 1,
    decoder_start_token_id: start,
    raw,
  };
}

/** Validates an already-parsed config.json object; `file` names it in errors. */
export function parseModelConfig(raw: unknown, file = CONFIG_FILE_NAME): ModelConfig {
  if (!isPlainObject(raw)) throw new Error(`${file}: must be a JSON object, got ${show(raw)}`);
  const modelType = new Fields(file, raw).string("model_type");
  switch (modelType) {
    case "llama":
    case "qwen2":
    case "mistral":
    case "qwen3":
    case "smollm3":
    case "phi3":
      return parseLlamaFamily(file, raw, modelType);
    case "gpt2":
      return parseGpt2(file, raw);
    case "gemma3_text":
      return parseGemma3Text(file, raw);
    case "t5":
      return parseT5(file, raw);
    default:
      return { model_type: modelType, recognized: false, raw };
  }
}

/** Reads and validates `<dir>/config.json`. */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const path = join(dir, CONFIG_FILE_NAME);
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.byteLength > MAX_CONFIG_BYTES)
      throw new Error(`${bytes.byteLength} bytes is too large for a config file`);
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new Error(`${path}: cannot read: ${(error as Error).message}`);
  }
  return parseModelConfig(parseJsonStrict(text, path), path);
}
