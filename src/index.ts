// loraga's public API: re-exports only.

export { collate, groupIntoBatches, type TokenBatch } from "./data/batches.js";
export { loadExamples } from "./data/dataset.js";
export { readModelConfig } from "./io/hf-config.js";
export { openCheckpoint, SafetensorsFile, writeSafetensors } from "./io/safetensors.js";
export { type ChatMessage, loadTokenizer, type Tokenizer } from "./io/tokenizer.js";
export { type CreateKernelsOptions, createKernels } from "./kernels/index.js";
export type * from "./kernels/kernels.js";
// linear algebra
export { svdJacobi } from "./linalg/svd-jacobi.js";
export { svdLowrank } from "./linalg/svd-lowrank.js";
export type { LinearAdapter, LinearInfo } from "./models/linear.js";
// models, tokenizers, data
export { type Batch, type CausalLM, type LossAndGradsOptions, loadModel } from "./models/model.js";
export { saveModel } from "./models/save.js";
export { loadAdapter, saveAdapter } from "./peft/adapter-io.js";

// LoRA and LoRA-GA
export { LoraConfig, LoraGAConfig } from "./peft/config.js";
export { convertAdapter } from "./peft/convert.js";
export { type EstimateOptions, type EstimateResult, estimateGradient } from "./peft/estimate.js";
export { type GradientMap, loadGradients, saveGradients } from "./peft/gradient-cache.js";
export { LoraLinear } from "./peft/lora.js";
export { getPeftModel, loadPeftModel, PeftModel } from "./peft/peft-model.js";
export { selectTargets } from "./peft/targets.js";
export type { DType } from "./tensor/dtype.js";
// engine
export { Heap, HeapExhaustedError, type HeapOptions } from "./tensor/heap.js";
export { Tensor } from "./tensor/tensor.js";
