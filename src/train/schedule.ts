// Learning-rate schedules with transformers' get_scheduler semantics (transformers/optimization.py,
// the LambdaLR lambdas of get_constant_schedule, get_constant_schedule_with_warmup,
// get_linear_schedule_with_warmup and get_cosine_schedule_with_warmup with num_cycles 0.5):
//   warmup (k < W):  factor = k / max(1, W)
//   constant:                 1                          (warmup is ignored, as in get_scheduler)
//   constant_with_warmup:     1
//   linear:                   max(0, (N - k) / max(1, N - W))
//   cosine:                   max(0, 0.5 (1 + cos(pi * 2 * 0.5 * p))),  p = (k - W) / max(1, N - W)
// lr(k) = baseLr * factor(k) is the learning rate used by the update of step k (0-based), i.e. the
// value torch's optimizer holds before the k-th scheduler.step(). Pure functions, no state: the
// step counter lives in the trainer (and its checkpoints).

export type ScheduleName = "constant" | "constant_with_warmup" | "linear" | "cosine";
export const SCHEDULE_NAMES: readonly ScheduleName[] = [
  "constant",
  "constant_with_warmup",
  "linear",
  "cosine",
];

export interface ScheduleConfig {
  name: ScheduleName;
  baseLr: number;
  /** Warmup steps W (default 0). */
  warmupSteps?: number;
  /** Total training steps N (used by linear and cosine). */
  totalSteps: number;
}

function checkConfig(c: ScheduleConfig): void {
  if (!SCHEDULE_NAMES.includes(c.name)) {
    throw new Error(
      `schedule: unknown name ${JSON.stringify(c.name)}; supported: ${SCHEDULE_NAMES.join(", ")}`,
    );
  }
  if (!Number.isFinite(c.baseLr) || c.baseLr < 0)
    throw new Error(`schedule: learning rate must be finite and >= 0, got ${c.baseLr}`);
  const w = c.warmupSteps ?? 0;
  if (!Number.isSafeInteger(w) || w < 0)
    throw new Error(`schedule: warmup steps must be a non-negative integer, got ${w}`);
  if (!Number.isSafeInteger(c.totalSteps) || c.totalSteps < 0) {
    throw new Error(`schedule: total steps must be a non-negative integer, got ${c.totalSteps}`);
  }
}

/** The multiplier of the base learning rate at step k (0-based). */
function scheduleFactor(config: ScheduleConfig, step: number): number {
  checkConfig(config);
  if (!Number.isSafeInteger(step) || step < 0)
    throw new Error(`schedule: step must be a non-negative integer, got ${step}`);
  const warmup = config.warmupSteps ?? 0;
  const total = config.totalSteps;
  if (config.name === "constant") return 1;
  if (step < warmup) return step / Math.max(1, warmup);
  switch (config.name) {
    case "constant_with_warmup":
      return 1;
    case "linear":
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case "cosine": {
      const progress = (step - warmup) / Math.max(1, total - warmup);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
    default:
      config.name satisfies never;
      throw new Error("unreachable");
  }
}

/** The learning rate of step k (0-based). */
export function learningRate(config: ScheduleConfig, step: number): number {
  return config.baseLr * scheduleFactor(config, step);
}
