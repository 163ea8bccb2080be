// loraga's public API: re-exports only, sorted by module path: data and io (examples, batches,
// tokenizers, safetensors), kernels, linalg, models, peft (LoRA, LoRA-GA, PeftModel), tensor (the
// engine's heap), train (the trainer with its data order, optimisers, schedules and checkpoints;
// generation; evaluation metrics), util (the seeded Rng).

export { collate, groupIntoBatches, type TokenBatch } from "./data/batches.js";
export { type LoadExamplesOptions, loadExamples } from "./data/dataset.js";
export type { TokenExample } from "./data/examples.js";
export { readModelConfig } from "./io/hf-config.js";
export { openCheckpoint, SafetensorsFile, writeSafetensors } from "./io/safetensors.js";
export { type ChatMessage, loadTokenizer, type Tokenizer } from "./io/tokenizer.js";
export { type CreateKernelsOptions, createKernels } from "./kernels/index.js";
export type * from "./kernels/kernels.js";
export { svdJacobi } from "./linalg/svd-jacobi.js";
export { svdLowrank } from "./linalg/svd-lowrank.js";
export type { LinearAdapter, LinearInfo } from "./models/linear.js";
export {
  type Batch,
  type CausalLM,
  type DecoderTargets,
  type LossAndGradsOptions,
  loadModel,
} from "./models/model.js";
export { saveModel } from "./models/save.js";
export { type AdapterWeights, loadAdapter, saveAdapter } from "./peft/adapter-io.js";
export { LoraConfig, LoraGAConfig } from "./peft/config.js";
export { convertAdapter } from "./peft/convert.js";
export { type EstimateOptions, type EstimateResult, estimateGradient } from "./peft/estimate.js";
export { type GradientMap, loadGradients, saveGradients } from "./peft/gradient-cache.js";
export { LoraLinear, type LoraParameter } from "./peft/lora.js";
export {
  getPeftModel,
  type LoadPeftModelOptions,
  loadPeftModel,
  PeftModel,
  type PeftModelOptions,
} from "./peft/peft-model.js";
export { selectTargets } from "./peft/targets.js";
export type { DType } from "./tensor/dtype.js";
export { Heap, HeapExhaustedError, type HeapOptions } from "./tensor/heap.js";
export { Tensor } from "./tensor/tensor.js";
export { latestCheckpoint, listCheckpoints, type TrainedWeights } from "./train/checkpoint.js";
export {
  type BatchSource,
  type DataState,
  FixedBatches,
  type PackOptions,
  packExamples,
  ShuffledBatches,
  type ShuffledBatchesOptions,
  splitHeldOut,
} from "./train/data-order.js";
export { type GenerateOptions, generate } from "./train/generate.js";
export {
  classifyByLikelihood,
  continuationLogLikelihoods,
  type EvalResult,
  evaluateLoss,
  extractFinalNumber,
  gsm8kExactMatch,
} from "./train/metrics.js";
export type { AdamWConfig, OptimizerConfig, SGDConfig } from "./train/optimizer.js";
export {
  learningRate,
  SCHEDULE_NAMES,
  type ScheduleConfig,
  type ScheduleName,
} from "./train/schedule.js";
export { fullFineTuning, type Trainable, type TrainedTensor } from "./train/trainable.js";
export {
  type TrainLogRecord,
  type TrainOptions,
  type TrainResult,
  train,
} from "./train/trainer.js";
export { Rng } from "./util/random.js";
