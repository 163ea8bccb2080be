// What the CPU training suites (lora-train.ts, lora-ga-init.ts, t5-train.ts) share: the engines
// they measure, and how they time training steps.

import { nativeAvailability } from "../src/kernels/native/index.js";
import type { BatchSource } from "../src/train/data-order.js";
import type { Trainable } from "../src/train/trainable.js";
import { train } from "../src/train/trainer.js";
import type { Reporter } from "./report.js";

/** wasm, and native when it is built (else a note says why it is skipped). */
export function cpuEngines(reporter: Reporter): ("wasm" | "native")[] {
  const native = nativeAvailability();
  if (native.ok) return ["wasm", "native"];
  reporter.note(`native engine skipped: ${native.reason}`);
  return ["wasm"];
}

/**
 * Seconds per training step (AdamW, lr 1e-4) over `steps` timed steps, after one untimed warm-up
 * step that plans the activations; `beforeTimed` runs between the two (a meter's reset).
 */
export async function trainStepSeconds(
  trainable: Trainable,
  data: BatchSource,
  steps: number,
  beforeTimed?: () => void,
): Promise<number> {
  await train(trainable, data, { steps: 1, lr: 1e-4 }); // warm-up (plans activations)
  beforeTimed?.();
  const t0 = performance.now();
  await train(trainable, data, { steps, lr: 1e-4 });
  return (performance.now() - t0) / 1000 / steps;
}
