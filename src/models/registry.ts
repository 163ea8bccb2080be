// model_type -> architecture: the one place that knows which architectures exist. Each entry
// builds a CausalLM from a validated config (io/hf-config.ts), an open checkpoint and kernels.
// An unknown model_type is an error that lists the supported ones.

import type {
  Gemma3TextConfig,
  Gpt2Config,
  LlamaFamilyConfig,
  ModelConfig,
  T5Config,
} from "../io/hf-config.js";
import type { Kernels } from "../kernels/kernels.js";
import type { CheckpointSource } from "./common.js";
import { createGemma } from "./gemma.js";
import { createGpt2 } from "./gpt2.js";
import { createLlama } from "./llama.js";
import type { CausalLM } from "./model.js";
import { createT5 } from "./t5.js";
import type { WeightLoadOptions } from "./weights.js";

type Build<C> = (
  config: C,
  checkpoint: CheckpointSource,
  kernels: Kernels,
  source: string,
  storage?: WeightLoadOptions,
) => Promise<CausalLM>;

/** Every supported model_type with the builder of its architecture (one file per architecture). */
const ARCHITECTURES: {
  llama: Build<LlamaFamilyConfig>;
  qwen2: Build<LlamaFamilyConfig>;
  mistral: Build<LlamaFamilyConfig>;
  qwen3: Build<LlamaFamilyConfig>;
  smollm3: Build<LlamaFamilyConfig>;
  phi3: Build<LlamaFamilyConfig>;
  gpt2: Build<Gpt2Config>;
  gemma3_text: Build<Gemma3TextConfig>;
  t5: Build<T5Config>;
} = {
  llama: createLlama,
  qwen2: createLlama,
  mistral: createLlama,
  qwen3: createLlama,
  smollm3: createLlama,
  phi3: createLlama,
  gpt2: createGpt2,
  gemma3_text: createGemma,
  t5: createT5,
};

export type SupportedModelType = keyof typeof ARCHITECTURES;

const SUPPORTED_MODEL_TYPES = Object.keys(ARCHITECTURES) as SupportedModelType[];

function isSupportedModelType(modelType: string): modelType is SupportedModelType {
  return Object.hasOwn(ARCHITECTURES, modelType);
}

function unsupported(modelType: string): Error {
  return new Error(
    `unsupported model_type "${modelType}"; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
  );
}

/** Encoder-decoder model types: their data rows are input -> target pairs (data/examples.ts). */
const ENCODER_DECODER: ReadonlySet<string> = new Set<SupportedModelType>(["t5"]);

/** True for an encoder-decoder model_type (t5), whose batches carry Batch.decoder. */
export function isEncoderDecoder(modelType: string): boolean {
  return ENCODER_DECODER.has(modelType);
}

/** Throws, listing the supported types, unless `modelType` has an architecture. */
export function assertSupportedModelType(
  modelType: string,
): asserts modelType is SupportedModelType {
  if (!isSupportedModelType(modelType)) throw unsupported(modelType);
}

/** Builds the model of `config.model_type`; throws listing the supported types for any other. */
export function buildModel(
  config: ModelConfig,
  checkpoint: CheckpointSource,
  kernels: Kernels,
  source: string,
  storage: WeightLoadOptions = {},
): Promise<CausalLM> {
  if (!config.recognized) throw unsupported(config.model_type);
  switch (config.model_type) {
    case "llama":
    case "qwen2":
    case "mistral":
    case "qwen3":
    case "smollm3":
    case "phi3":
      return ARCHITECTURES[config.model_type](config, checkpoint, kernels, source, storage);
    case "gpt2":
      return ARCHITECTURES.gpt2(config, checkpoint, kernels, source, storage);
    case "gemma3_text":
      return ARCHITECTURES.gemma3_text(config, checkpoint, kernels, source, storage);
    case "t5":
      return ARCHITECTURES.t5(config, checkpoint, kernels, source, storage);
    default:
      config satisfies never;
      throw unsupported((config as { model_type: string }).model_type);
  }
}
