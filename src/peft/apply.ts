// Attaching LoRA adapters to a model: select the targets (targets.ts), per module r / alpha
// (rank_pattern / alpha_pattern) and scaling, initialise A and B (init registry) or take given
// weights, subtract the init's base offset from the model's weight IN PLACE (stored layout), and
// hook a LoraLinear into the layer (CausalLM.setAdapter).
// Internal to peft/: PeftModel (peft-model.ts) is the one owner of the attached layers; it detaches
// and frees them (detachAdapters). applyLora itself only cleans up after its own failure.
//
// Contract: the model's base weights change only by the offsets of inits that move the base
// (LoRA-GA, PiSSA, OLoRA, LoRA-One with subtractOffset) or by `offsetFrom` (re-creating W' = W - s B0 A0
// from a saved initial adapter before resuming). The initial A and B are returned (copies) so that the
// trained adapter can later be converted for the original base (convert.ts).

import { hostKernels } from "../kernels/index.js";
import type { CausalLM } from "../models/model.js";
import { tensorToF32, writeF32ToTensor } from "../models/weights.js";
import type { Rng } from "../util/random.js";
import type { AdapterWeights } from "./adapter-io.js";
import { type LoraConfig, LoraGAConfig, loraScaling, moduleRankAlpha } from "./config.js";
import { assertFiniteGradient, type GradientEntry } from "./gradient-cache.js";
import type { SvdChoice } from "./init/common.js";
import { scaledProduct, subtractBaseOffset } from "./init/common.js";
import { type InitOptions, initAdapter, loraGAOptionsOf } from "./init/index.js";
import { LoraLinear } from "./lora.js";
import { selectTargets } from "./targets.js";

export interface ApplyLoraOptions {
  rng: Rng;
  /** Weight gradients by module path, stored layout (lora_ga, lora_one). */
  grads?: ReadonlyMap<string, GradientEntry>;
  /** Use these A and B instead of running the init (e.g. a loaded adapter). */
  weights?: ReadonlyMap<string, AdapterWeights>;
  /** Subtract s B0 A0 of these (initial) adapters from the base first: recreates W' for resuming. */
  offsetFrom?: ReadonlyMap<string, AdapterWeights>;
  svd?: SvdChoice;
  initOptions?: Omit<InitOptions, "svd">;
  adapterDtype?: "f32" | "bf16";
  trainable?: boolean;
}

export interface AppliedLora {
  /** The attached layers by module path; the caller owns them (detachAdapters frees them). */
  layers: Map<string, LoraLinear>;
  /** Copies of the initial A and B per module (for conversion after training). */
  initial: Map<string, AdapterWeights>;
  /** Paths whose base weight was offset. */
  offsetModules: string[];
}

type LoraHost = Pick<
  CausalLM,
  | "kernels"
  | "params"
  | "linears"
  | "setAdapter"
  | "weightStorage"
  | "readLinearWeight"
  | "writeLinearWeight"
>;

/** Detaches and frees every layer (base weights keep their offsets); empties `layers`. */
export function detachAdapters(
  model: Pick<CausalLM, "setAdapter">,
  layers: Map<string, LoraLinear>,
): void {
  for (const [path, layer] of layers) {
    model.setAdapter(path, null);
    layer.dispose();
  }
  layers.clear();
}

export function applyLora(
  model: LoraHost,
  config: LoraConfig,
  options: ApplyLoraOptions,
): AppliedLora {
  const targets = selectTargets(config, model.linears());
  const layers = new Map<string, LoraLinear>();
  const initial = new Map<string, AdapterWeights>();
  const offsetModules: string[] = [];
  // the inits read their products at once (SVD, offsets): on the host for a deferred engine
  const initKernels = hostKernels(model.kernels);
  const initOptions: InitOptions = {
    ...options.initOptions,
    ...(options.svd !== undefined && { svd: options.svd }),
    ...(config instanceof LoraGAConfig && { loraGA: loraGAOptionsOf(config, options.svd) }),
  };
  try {
    for (const info of targets) {
      const { r, alpha } = moduleRankAlpha(config, info.path);
      const scaling = loraScaling(alpha, r, config.use_rslora);
      // null: a float weight offloaded off the heap (models/weights.ts), read and written by copy
      const weightTensor = model.params.get(info.weightName) ?? null;
      const storage = model.weightStorage(info.path);
      if (weightTensor === null && storage !== "f32" && storage !== "bf16" && storage !== "f16") {
        throw new Error(
          `applyLora: model has no parameter ${info.weightName} for module ${info.path} (quantized? attach adapters before quantizeLinears)`,
        );
      }
      // f32 heap: a live view, offsets are written through it; 16-bit or offloaded: an f32 copy,
      // written back below
      const halfBase = weightTensor === null || weightTensor.dtype !== "f32";
      const weight =
        weightTensor === null
          ? model.readLinearWeight(info.path)
          : halfBase
            ? tensorToF32(weightTensor)
            : weightTensor.f32();
      const before = options.offsetFrom?.get(info.path);
      if (before !== undefined) {
        subtractBaseOffset(
          weight,
          scaledProduct(
            before.B,
            before.A,
            info.outFeatures,
            r,
            info.inFeatures,
            scaling,
            initKernels,
          ),
          info,
        );
        offsetModules.push(info.path);
      }
      let A: Float32Array;
      let B: Float32Array;
      const given = options.weights?.get(info.path);
      if (given !== undefined) {
        ({ A, B } = given);
      } else {
        const g = options.grads?.get(info.path);
        if (g !== undefined) assertFiniteGradient(info.path, g.data);
        const res = initAdapter(
          config.init_lora_weights,
          {
            path: info.path,
            inFeatures: info.inFeatures,
            outFeatures: info.outFeatures,
            fanInFanOut: info.fanInFanOut,
            r,
            scaling,
            weight: weight.slice(),
            grad: g?.data ?? null,
            rng: options.rng,
            kernels: initKernels,
            ...(options.adapterDtype !== undefined && { adapterDtype: options.adapterDtype }),
          },
          initOptions,
        );
        ({ A, B } = res);
        if (res.baseOffset !== null) {
          subtractBaseOffset(
            halfBase ? weight : (model.params.get(info.weightName)?.f32() ?? weight),
            res.baseOffset,
            info,
          );
          offsetModules.push(info.path);
        }
      }
      if (offsetModules.at(-1) === info.path) {
        // the host rewrote the base weight
        if (weightTensor === null) model.writeLinearWeight(info.path, weight);
        else {
          if (halfBase) writeF32ToTensor(weightTensor, weight);
          model.kernels.upload(weightTensor);
        }
      }
      initial.set(info.path, { A: A.slice(), B: B.slice() });
      const layer = new LoraLinear(model.kernels, info, {
        r,
        scaling,
        A,
        B,
        dropout: config.lora_dropout,
        rng: options.rng,
        ...(options.trainable !== undefined && { trainable: options.trainable }),
      });
      layers.set(info.path, layer);
      model.setAdapter(info.path, layer);
    }
  } catch (e) {
    detachAdapters(model, layers);
    throw e;
  }
  return { layers, initial, offsetModules };
}
