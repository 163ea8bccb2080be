// getPeftModel: attaches LoRA adapters to the targeted linear layers of a model, initialised by the
// config's init_lora_weights (default, gaussian, pissa, olora, lora_ga, lora_one), and subtracts the
// init's base offset from the frozen weights when it has one (LoRA-GA, PiSSA, OLoRA), so that the
// model's output is unchanged: W' + s B0 A0 == W (docs/lora-ga-spec.md §6).
//
// A PeftModel is the one owner of the adapters it attached: it is what trains (it implements the
// trainer's Trainable, train/trainable.ts: parameters, gradients, training mode, dropout Rng,
// checkpoint weights), what saves, merges, and frees them (dispose). It remembers the initial
// factors (A0, B0) of an offset init, so that save() can write either the adapter for the offset
// base W' (with a loraga_init record that says how W' was made) or, with convert, a plain rank-2r
// LoRA for the ORIGINAL base (docs/lora-ga-spec.md §8, convert.ts). Once put in training mode its
// factors are no longer the init's: save() then records `trained: true`, and loadPeftModel refuses
// to rebuild the offset base from them.

import type { LinearInfo } from "../models/linear.js";
import type { CausalLM } from "../models/model.js";
import type { TrainedWeights } from "../train/checkpoint.js";
import type { Trainable } from "../train/trainable.js";
import { Rng } from "../util/random.js";
import { type AdapterWeights, loadAdapter, saveAdapter } from "./adapter-io.js";
import { applyLora, detachAdapters } from "./apply.js";
import { type LoraConfig, LoraGAConfig } from "./config.js";
import { convertAdapter } from "./convert.js";
import { assertNonZeroGradient, type GradientEntry, type GradientMap } from "./gradient-cache.js";
import type { SvdChoice } from "./init/common.js";
import { initMethodOf } from "./init/index.js";
import type { LoraLinear, LoraParameter } from "./lora.js";
import { selectTargets } from "./targets.js";

export interface PeftModelOptions {
  /** Per-module gradients (estimateGradient / loadGradients); required by lora_ga and lora_one. */
  namedGrad?: GradientMap;
  /** Seeds every random choice of the init (default 0). */
  seed?: number;
  /** Randomized (default, as PEFT) or exact SVD for the SVD-based inits. */
  svd?: SvdChoice;
  /** Allocate adapter gradients (default true). */
  trainable?: boolean;
  /**
   * Start from these factors (e.g. loadAdapter's weights) instead of running the init; they must
   * cover exactly the targeted modules. The base weights are left as they are.
   */
  weights?: ReadonlyMap<string, AdapterWeights>;
}

export class PeftModel implements Trainable {
  readonly kind = "lora";
  readonly base: CausalLM;
  readonly config: LoraConfig;
  /** The attached LoraLinear layers by module path (empty after dispose / mergeAndUnload). */
  readonly adapters: ReadonlyMap<string, LoraLinear>;
  /** Initial (A0, B0) per module when the init offset the base weights; null otherwise. */
  readonly initial: ReadonlyMap<string, AdapterWeights> | null;
  /** How the adapters were initialised (written with the adapter as __metadata__.loraga_init). */
  readonly initRecord: Readonly<Record<string, unknown>>;
  /** The generator the adapters draw dropout masks from (a trainer checkpoints its state). */
  readonly rng: Rng;
  private readonly layers: Map<string, LoraLinear>;
  private wasTrained = false;

  /** Takes ownership of `layers`, already attached to `base` (getPeftModel, loadPeftModel). */
  constructor(
    base: CausalLM,
    config: LoraConfig,
    layers: Map<string, LoraLinear>,
    initial: ReadonlyMap<string, AdapterWeights> | null,
    initRecord: Readonly<Record<string, unknown>>,
    rng: Rng,
  ) {
    this.base = base;
    this.config = config;
    this.layers = layers;
    this.adapters = layers;
    this.initial = initial;
    this.initRecord = initRecord;
    this.rng = rng;
  }

  /** True once the adapters were put in training mode: the factors may differ from the init's. */
  get trained(): boolean {
    return this.wasTrained;
  }

  /** lora_A / lora_B of every adapter with their gradients (null when attached frozen). */
  parameters(): LoraParameter[] {
    return [...this.layers.values()].flatMap((a) => a.parameters());
  }

  zeroGrad(): void {
    for (const a of this.layers.values()) a.zeroGrad();
  }

  /** Dropout on (PEFT's model.train()) or off (model.eval()); on marks the adapters as trained. */
  setTraining(on: boolean): void {
    if (on) this.wasTrained = true;
    for (const a of this.layers.values()) a.training = on;
  }

  /** The adapters as a checkpoint stores them (trainer). */
  trainedWeights(): TrainedWeights {
    return { kind: "lora", config: this.config, adapters: this.weights() };
  }

  /** Copies of the current factors, per module path. */
  weights(): Map<string, AdapterWeights> {
    return new Map(
      [...this.layers].map(([path, a]) => [path, { A: a.A.toArray(), B: a.B.toArray() }]),
    );
  }

  /**
   * Writes adapter_config.json + adapter_model.safetensors. With convert (only meaningful after an
   * offset init), writes the plain rank-2r LoRA for the original base instead of the adapter for the
   * offset base. The loraga_init record is the init's, plus `trained: true` once trained (not
   * converted) or `converted: true`.
   */
  async save(dir: string, options: { convert?: boolean } = {}): Promise<void> {
    if (options.convert) {
      if (this.initial === null)
        throw new Error("save: convert needs an init that offset the base weights");
      const converted = convertAdapter(this.config, this.weights(), this.initial);
      await saveAdapter(dir, converted.config, converted.weights, {
        init: { ...this.initRecord, converted: true },
      });
      return;
    }
    const init = this.wasTrained ? { ...this.initRecord, trained: true } : this.initRecord;
    await saveAdapter(dir, this.config, this.weights(), { init });
  }

  /**
   * Merges every adapter into its base weight (W += s B A) and detaches the adapters. A 16-bit or
   * quantized base weight is widened to f32, merged and re-encoded in its storage (lossy for int8 / nf4).
   */
  mergeAndUnload(): CausalLM {
    for (const [path, adapter] of this.layers) {
      if (
        this.base.weightStorage(path) === "f32" &&
        this.base.params.has(adapter.info.weightName)
      ) {
        adapter.merge(this.paramOf(adapter.info));
      } else {
        const { inFeatures: n, outFeatures: m, fanInFanOut } = adapter.info;
        const widened = this.base.kernels.heap.fromArray(
          this.base.readLinearWeight(path),
          fanInFanOut ? [n, m] : [m, n],
        );
        adapter.merge(widened);
        this.base.writeLinearWeight(path, widened.toArray());
        widened.dispose();
      }
    }
    detachAdapters(this.base, this.layers);
    return this.base;
  }

  /** Detaches and frees the adapters (again: nothing); the base keeps the init's offset. */
  dispose(): void {
    detachAdapters(this.base, this.layers);
  }

  private paramOf(info: LinearInfo) {
    const weight = this.base.params.get(info.weightName);
    if (weight === undefined) throw new Error(`model has no parameter ${info.weightName}`);
    return weight;
  }
}

/** Attaches initialised adapters to `model` (modifying its base weights for offset inits). */
export function getPeftModel(
  model: CausalLM,
  config: LoraConfig,
  options: PeftModelOptions = {},
): PeftModel {
  if (options.weights !== undefined) return withWeights(model, config, options.weights, options);
  const method = initMethodOf(config.init_lora_weights);
  if ((method === "lora_ga" || method === "lora_one") && options.namedGrad === undefined) {
    throw new Error(
      `init "${method}" needs gradients: run estimateGradient (or load a gradient cache) first`,
    );
  }
  if (options.namedGrad !== undefined) {
    for (const info of selectTargets(config, model.linears())) {
      if (!options.namedGrad.has(info.path)) {
        throw new Error(
          `no gradient for target module ${info.path} (the gradients do not fit the targets)`,
        );
      }
      assertNonZeroGradient(info.path, (options.namedGrad.get(info.path) as GradientEntry).data);
    }
  }
  const rng = new Rng(options.seed ?? 0);
  const applied = applyLora(model, config, {
    rng,
    ...(options.namedGrad !== undefined && { grads: options.namedGrad }),
    ...(options.svd !== undefined && { svd: options.svd }),
    ...(options.trainable !== undefined && { trainable: options.trainable }),
  });
  const offsetBase = applied.offsetModules.length > 0;
  const initRecord: Record<string, unknown> = {
    init_lora_weights: config.init_lora_weights,
    seed: options.seed ?? 0,
    offset_base: offsetBase,
    ...(config instanceof LoraGAConfig && {
      lora_ga: {
        direction: config.direction,
        scale: config.scale,
        stable_gamma: config.stable_gamma,
        variant: config.variant,
        norm_clip: config.norm_clip,
      },
    }),
  };
  return new PeftModel(
    model,
    config,
    applied.layers,
    offsetBase ? applied.initial : null,
    initRecord,
    rng,
  );
}

/** getPeftModel with given factors: no init, no base offset. */
function withWeights(
  model: CausalLM,
  config: LoraConfig,
  weights: ReadonlyMap<string, AdapterWeights>,
  options: PeftModelOptions,
): PeftModel {
  if (options.namedGrad !== undefined)
    throw new Error("getPeftModel: give either weights or namedGrad, not both");
  const targets = selectTargets(config, model.linears());
  for (const path of weights.keys()) {
    if (!targets.some((t) => t.path === path))
      throw new Error(`getPeftModel: weights for ${path}, which the config does not target`);
  }
  for (const info of targets) {
    if (!weights.has(info.path))
      throw new Error(`getPeftModel: no lora_A/lora_B weights for targeted module ${info.path}`);
  }
  const seed = options.seed ?? 0;
  const rng = new Rng(seed);
  const applied = applyLora(model, config, {
    rng,
    weights,
    ...(options.trainable !== undefined && { trainable: options.trainable }),
  });
  const initRecord = { source: "given weights", seed, offset_base: false };
  return new PeftModel(model, config, applied.layers, null, initRecord, rng);
}

export interface LoadPeftModelOptions {
  /**
   * The init adapter (A0, B0) of an adapter trained on an offset base (LoRA-GA / PiSSA / OLoRA):
   * W' = W - s B0 A0 is recreated before the trained adapter is attached.
   */
  initAdapterDir?: string;
  /** Allocate adapter gradients (default false: inference / merging). */
  trainable?: boolean;
  /**
   * Subtract s B A of this adapter from the base first, for an adapter made by an offset init
   * elsewhere (LoRA-GA / PiSSA / OLoRA in PEFT) that carries no loraga_init record.
   */
  offsetBase?: boolean;
  /** Seeds the dropout generator (default 0). */
  seed?: number;
}

/**
 * Attaches a saved adapter to `model`. An adapter made by an offset init and not converted needs
 * its base offset: from `initAdapterDir`, or — for the init adapter itself, whose record says so —
 * from its own factors. A converted or plain adapter attaches to the original base as is.
 */
export async function loadPeftModel(
  model: CausalLM,
  adapterDir: string,
  options: LoadPeftModelOptions = {},
): Promise<PeftModel> {
  const loaded = await loadAdapter(adapterDir, model.linears());
  const record = loaded.init ?? {};
  const needsOffset = record.offset_base === true && record.converted !== true;
  let offsetFrom: ReadonlyMap<string, AdapterWeights> | undefined;
  if (options.initAdapterDir !== undefined) {
    const init = await loadAdapter(options.initAdapterDir, model.linears());
    if (init.init?.offset_base !== true) {
      throw new Error(
        `${options.initAdapterDir}: not an init adapter that offset the base (no loraga_init record saying so)`,
      );
    }
    offsetFrom = init.weights;
  } else if (needsOffset || options.offsetBase === true) {
    if (record.trained === true) {
      throw new Error(
        `${adapterDir}: this adapter was trained on an offset base; give its init adapter (--init) or convert it first`,
      );
    }
    offsetFrom = loaded.weights; // the init adapter itself: W' + s B0 A0 == W
  }
  const rng = new Rng(options.seed ?? 0);
  const applied = applyLora(model, loaded.config, {
    rng,
    weights: loaded.weights,
    ...(offsetFrom !== undefined && { offsetFrom }),
    trainable: options.trainable ?? false,
  });
  const initRecord = options.offsetBase === true ? { ...record, offset_base: true } : record;
  return new PeftModel(model, loaded.config, applied.layers, offsetFrom ?? null, initRecord, rng);
}
