// loraga's public API: re-exports only.

// engine
export { Heap, HeapExhaustedError, type HeapOptions } from "./tensor/heap.js";
export { Tensor } from "./tensor/tensor.js";
export type { DType } from "./tensor/dtype.js";
export type * from "./kernels/kernels.js";
export { createKernels, type CreateKernelsOptions } from "./kernels/index.js";

// models, tokenizers, data
export { loadModel, type Batch, type CausalLM, type LossAndGradsOptions } from "./models/model.js";
export type { LinearAdapter, LinearInfo } from "./models/linear.js";
export { saveModel } from "./models/save.js";
export { loadTokenizer, type Tokenizer, type ChatMessage } from "./io/tokenizer.js";
export { openCheckpoint, SafetensorsFile, writeSafetensors } from "./io/safetensors.js";
export { readModelConfig } from "./io/hf-config.js";
export { loadExamples } from "./data/dataset.js";
export { collate, groupIntoBatches, type TokenBatch } from "./data/batches.js";

// LoRA and LoRA-GA
export { LoraConfig, LoraGAConfig } from "./peft/config.js";
export { estimateGradient, type EstimateOptions, type EstimateResult } from "./peft/estimate.js";
export { getPeftModel, loadPeftModel, PeftModel } from "./peft/peft-model.js";
export { saveGradients, loadGradients, type GradientMap } from "./peft/gradient-cache.js";
export { saveAdapter, loadAdapter } from "./peft/adapter-io.js";
export { convertAdapter } from "./peft/convert.js";
export { LoraLinear } from "./peft/lora.js";
export { selectTargets } from "./peft/targets.js";

// linear algebra
export { svdJacobi } from "./linalg/svd-jacobi.js";
export { svdLowrank } from "./linalg/svd-lowrank.js";
