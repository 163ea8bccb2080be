// Optimisers over a list of named trainable f32 tensors and their gradient tensors.
//
// Contract:
// - `createOptimizer(kernels, params, config)` allocates the optimiser state on the kernels' heap
//   once (AdamW: exp_avg m and exp_avg_sq v per parameter; SGD with momentum: momentum_buffer), so
//   the training loop allocates nothing.
// - `update(lr)` does ONE step on every parameter with the gradients as they are (the caller
//   accumulates, clips, and zeroes them; the optimiser never touches a gradient).
// - AdamW is torch.optim.AdamW (decoupled weight decay, bias correction, eps after the correction),
//   delegated to kernels.adamw, which is tested against PyTorch (test/kernels/ref-adamw.test.ts).
// - SGD is torch.optim.SGD (_single_tensor_sgd, PyTorch 2.x): g += wd * p; with momentum mu the
//   buffer starts as a copy of g, then buf = mu * buf + (1 - dampening) * g; nesterov uses
//   g + mu * buf, otherwise buf; p -= lr * g. Every stored value is rounded to float32 like torch.
//   Delegated to kernels.sgd (kernels/ref/sgd.ts is the reference).
// - `state()` / `loadState()` capture everything needed to resume exactly: the completed step count
//   and the state tensors by name ("exp_avg.<param>", "exp_avg_sq.<param>", "momentum_buffer.<param>").
//   loadState validates names and sizes and names the offending tensor on error.

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";

/** A parameter the optimiser updates, with the gradient buffer it reads (same shape). */
export interface TrainableParam {
  /** Unique name (HF parameter name, or the PEFT "<module>.lora_A.weight" name). */
  name: string;
  param: Tensor;
  grad: Tensor;
}

export interface AdamWConfig {
  kind: "adamw";
  /** Defaults as torch.optim.AdamW's, except weightDecay (torch: 0.01; here 0 unless given). */
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface SGDConfig {
  kind: "sgd";
  /** Default 0 (no buffer). */
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export type OptimizerConfig = AdamWConfig | SGDConfig;

/** What a checkpoint stores for an optimiser. */
export interface OptimizerState {
  kind: OptimizerConfig["kind"];
  /** Completed steps. */
  step: number;
  /** State tensors by name, copied off the heap. */
  tensors: Map<string, Float32Array>;
}

export interface Optimizer {
  readonly kind: OptimizerConfig["kind"];
  /** Completed steps (AdamW's bias correction uses step + 1 for the next update). */
  readonly step: number;
  readonly params: readonly TrainableParam[];
  /** One update of every parameter with learning rate lr. */
  update(lr: number): void;
  state(): OptimizerState;
  loadState(state: OptimizerState): void;
  /** Frees the state tensors (not the parameters or gradients). */
  dispose(): void;
}

function checkParams(params: readonly TrainableParam[]): void {
  const seen = new Set<string>();
  for (const p of params) {
    if (seen.has(p.name)) throw new Error(`optimizer: parameter ${p.name} is listed twice`);
    seen.add(p.name);
    if (p.param.dtype !== "f32" || p.grad.dtype !== "f32") {
      throw new Error(
        `optimizer: parameter ${p.name} and its gradient must be f32 (got ${p.param.dtype}, ${p.grad.dtype})`,
      );
    }
    if (p.param.size !== p.grad.size) {
      throw new Error(
        `optimizer: gradient of ${p.name} has ${p.grad.size} elements, the parameter ${p.param.size}`,
      );
    }
  }
}

function checkNumber(what: string, v: number, lo: number, hi: number, hiOpen = true): number {
  if (!Number.isFinite(v) || v < lo || (hiOpen ? v >= hi : v > hi)) {
    throw new Error(`optimizer: ${what} must be in [${lo}, ${hi}${hiOpen ? ")" : "]"}, got ${v}`);
  }
  return v;
}

/** Base: owns named state tensors and their save/load. */
abstract class StatefulOptimizer {
  readonly params: readonly TrainableParam[];
  protected steps = 0;
  protected readonly buffers = new Map<string, Tensor>();

  constructor(params: readonly TrainableParam[]) {
    checkParams(params);
    this.params = params;
  }

  get step(): number {
    return this.steps;
  }

  protected addBuffer(heap: Kernels["heap"], key: string, like: Tensor): Tensor {
    const t = heap.zeros(like.shape);
    this.buffers.set(key, t);
    return t;
  }

  protected checkLr(lr: number): void {
    if (!Number.isFinite(lr) || lr < 0)
      throw new Error(`optimizer: learning rate must be finite and >= 0, got ${lr}`);
  }

  protected saveTensors(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [k, t] of this.buffers) out.set(k, t.toArray());
    return out;
  }

  protected loadTensors(kind: string, state: OptimizerState): void {
    if (state.kind !== kind)
      throw new Error(`optimizer state: saved for "${state.kind}", this optimizer is "${kind}"`);
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw new Error(`optimizer state: step must be a non-negative integer, got ${state.step}`);
    }
    for (const key of state.tensors.keys()) {
      if (!this.buffers.has(key))
        throw new Error(
          `optimizer state: unexpected tensor ${key} (not a state of any trainable parameter)`,
        );
    }
    for (const [key, t] of this.buffers) {
      const data = state.tensors.get(key);
      if (data === undefined) throw new Error(`optimizer state: tensor ${key} is missing`);
      if (data.length !== t.size)
        throw new Error(`optimizer state: ${key} has ${data.length} values, expected ${t.size}`);
    }
    for (const [key, t] of this.buffers) t.f32().set(state.tensors.get(key) as Float32Array);
    this.steps = state.step;
  }

  dispose(): void {
    for (const t of this.buffers.values()) t.dispose();
    this.buffers.clear();
  }
}

class AdamW extends StatefulOptimizer implements Optimizer {
  readonly kind = "adamw" as const;
  private readonly kernels: Kernels;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly moments: { m: Tensor; v: Tensor }[];

  constructor(kernels: Kernels, params: readonly TrainableParam[], config: AdamWConfig) {
    super(params);
    this.kernels = kernels;
    this.beta1 = checkNumber("beta1", config.beta1 ?? 0.9, 0, 1);
    this.beta2 = checkNumber("beta2", config.beta2 ?? 0.999, 0, 1);
    this.eps = checkNumber("eps", config.eps ?? 1e-8, 0, Number.MAX_VALUE, false);
    this.weightDecay = checkNumber(
      "weight decay",
      config.weightDecay ?? 0,
      0,
      Number.MAX_VALUE,
      false,
    );
    this.moments = params.map((p) => ({
      m: this.addBuffer(kernels.heap, `exp_avg.${p.name}`, p.param),
      v: this.addBuffer(kernels.heap, `exp_avg_sq.${p.name}`, p.param),
    }));
  }

  update(lr: number): void {
    this.checkLr(lr);
    const step = this.steps + 1;
    const options = {
      lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      step,
    };
    this.params.forEach((p, i) => {
      this.kernels.adamw(p.param, p.grad, this.moments[i].m, this.moments[i].v, options);
    });
    this.steps = step;
  }

  state(): OptimizerState {
    return { kind: this.kind, step: this.steps, tensors: this.saveTensors() };
  }

  loadState(state: OptimizerState): void {
    this.loadTensors(this.kind, state);
    this.kernels.upload(...this.buffers.values());
  }
}

class SGD extends StatefulOptimizer implements Optimizer {
  readonly kind = "sgd" as const;
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly nesterov: boolean;
  private readonly weightDecay: number;
  private readonly kernels: Kernels;
  /** (P) per parameter, or empty without momentum */
  private readonly momentumBuffers: Tensor[];

  constructor(kernels: Kernels, params: readonly TrainableParam[], config: SGDConfig) {
    super(params);
    this.kernels = kernels;
    this.momentum = checkNumber("momentum", config.momentum ?? 0, 0, Number.MAX_VALUE, false);
    this.dampening = checkNumber("dampening", config.dampening ?? 0, 0, 1, false);
    this.nesterov = config.nesterov ?? false;
    this.weightDecay = checkNumber(
      "weight decay",
      config.weightDecay ?? 0,
      0,
      Number.MAX_VALUE,
      false,
    );
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new Error(
        "optimizer: nesterov SGD requires momentum > 0 and dampening 0 (as torch.optim.SGD)",
      );
    }
    this.momentumBuffers =
      this.momentum > 0
        ? params.map((p) => this.addBuffer(kernels.heap, `momentum_buffer.${p.name}`, p.param))
        : [];
  }

  update(lr: number): void {
    this.checkLr(lr);
    const options = {
      lr,
      momentum: this.momentum,
      dampening: this.dampening,
      nesterov: this.nesterov,
      weightDecay: this.weightDecay,
      first: this.steps === 0, // torch: momentum_buffer is None before the first step
    };
    this.params.forEach((p, i) => {
      const buf = this.momentum > 0 ? this.momentumBuffers[i] : null;
      this.kernels.sgd(p.param, p.grad, buf, options);
    });
    this.steps++;
  }

  state(): OptimizerState {
    return { kind: this.kind, step: this.steps, tensors: this.saveTensors() };
  }

  loadState(state: OptimizerState): void {
    this.loadTensors(this.kind, state);
    this.kernels.upload(...this.buffers.values());
  }
}

/** The config with every default filled in (so equal settings compare equal, e.g. on resume). */
export function withOptimizerDefaults(
  config: OptimizerConfig,
): Required<AdamWConfig> | Required<SGDConfig> {
  if (config.kind === "adamw") {
    return {
      kind: "adamw",
      beta1: config.beta1 ?? 0.9,
      beta2: config.beta2 ?? 0.999,
      eps: config.eps ?? 1e-8,
      weightDecay: config.weightDecay ?? 0,
    };
  }
  if (config.kind === "sgd") {
    return {
      kind: "sgd",
      momentum: config.momentum ?? 0,
      dampening: config.dampening ?? 0,
      nesterov: config.nesterov ?? false,
      weightDecay: config.weightDecay ?? 0,
    };
  }
  throw new Error(
    `optimizer: unknown kind ${JSON.stringify((config as { kind: unknown }).kind)}; supported: "adamw", "sgd"`,
  );
}

/** Creates the optimiser named by config.kind over `params`. */
export function createOptimizer(
  kernels: Kernels,
  params: readonly TrainableParam[],
  config: OptimizerConfig,
): Optimizer {
  switch (config.kind) {
    case "adamw":
      return new AdamW(kernels, params, config);
    case "sgd":
      return new SGD(kernels, params, config);
    default:
      config satisfies never;
      throw new Error(
        `optimizer: unknown kind ${JSON.stringify((config as { kind: unknown }).kind)}; supported: "adamw", "sgd"`,
      );
  }
}
