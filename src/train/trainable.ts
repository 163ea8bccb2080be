// What the trainer trains (trainer.ts): the one interface shared by LoRA and full fine-tuning.
//
// Two implementations:
// - PeftModel (peft/peft-model.ts): the adapters attached to a model; only lora_A / lora_B train,
//   their gradients live in the LoraLinear layers, dropout draws from the PeftModel's Rng.
// - fullFineTuning(model) (here): every parameter of model.params trains; the gradient buffers are
//   allocated here (zeroed) and handed to model.lossAndGrads as paramGrads. f32 parameters only
//   (loadModel's default weight storage; 16-bit or quantized linear weights are frozen-only and are
//   refused with the parameter's name).
// A Trainable owns what it allocated and frees it in dispose(); it never frees its base model.

import type { CausalLM } from "../models/model.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../util/random.js";
import type { TrainedWeights } from "./checkpoint.js";

/** A trained tensor and its gradient buffer (null: frozen, the trainer refuses it). */
export interface TrainedTensor {
  /** HF parameter name, or PEFT's "<module>.lora_A.weight" / "<module>.lora_B.weight". */
  name: string;
  param: Tensor;
  grad: Tensor | null;
}

/** What train() needs from the thing it trains. */
export interface Trainable {
  /** "lora" (adapters only) or "full" (every weight); a checkpoint must match it on resume. */
  readonly kind: "lora" | "full";
  /** The model whose forward and backward the trainer runs. */
  readonly base: CausalLM;
  /** Every tensor the optimiser updates, with its gradient (same order on every call). */
  parameters(): TrainedTensor[];
  /** Model parameter gradients lossAndGrads accumulates into (full fine-tuning), by HF name. */
  readonly paramGrads?: ReadonlyMap<string, Tensor>;
  zeroGrad(): void;
  /** Training mode on (dropout active) or off (evaluation, generation). */
  setTraining(on: boolean): void;
  /** The generator of random choices made while training (dropout), or null; checkpointed. */
  readonly rng: Rng | null;
  /** Copies of the trained weights, as a checkpoint stores them. */
  trainedWeights(): TrainedWeights;
  /** Frees what this trainable allocated (adapters, gradient buffers); the base model stays. */
  dispose(): void;
}

/** Full fine-tuning: every parameter of model.params trains (f32 parameters only). */
export function fullFineTuning(model: CausalLM): Trainable {
  const heap = model.kernels.heap;
  const grads = new Map<string, Tensor>();
  const quantized = model
    .linears()
    .some((info) => ["int8", "nf4"].includes(model.weightStorage(info.path)));
  if (model.linearWeightBytes().offHeap > 0 || quantized) {
    throw new Error(
      'full fine-tuning: some linear weights live off the engine heap (quantized or offloaded); load the model with offloadFrozen: "off" and no quantization',
    );
  }
  for (const [name, p] of model.params) {
    if (p.dtype !== "f32")
      throw new Error(
        `full fine-tuning: parameter ${name} is ${p.dtype}; only f32 parameters can be trained`,
      );
    grads.set(name, heap.zeros(p.shape));
  }
  const paramOf = (name: string): Tensor => model.params.get(name) as Tensor;
  return {
    kind: "full",
    base: model,
    paramGrads: grads,
    rng: null,
    parameters: () => [...grads].map(([name, grad]) => ({ name, param: paramOf(name), grad })),
    zeroGrad: () => {
      for (const g of grads.values()) model.kernels.fill(g, 0);
    },
    setTraining: () => undefined,
    trainedWeights: () => ({
      kind: "full",
      params: new Map(
        [...grads.keys()].map((name) => {
          const p = paramOf(name);
          return [name, { shape: [...p.shape], data: p.toArray() }];
        }),
      ),
    }),
    dispose: () => {
      for (const g of grads.values()) g.dispose();
      grads.clear();
    },
  };
}
