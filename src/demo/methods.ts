// The demo's comparison: which methods run, with which learning rate, and the verdict on the
// issue's claim (LoRA-GA reaches default LoRA's final training loss in at most half the steps,
// and its held-out exact match is at least LoRA's). Everything else (steps, batch size, seed,
// rank, alpha, schedule, data order) is the same for every method.
//
// Learning rates (the only per-method setting), by method family:
// - full fine-tuning: FULL_LR.
// - LoRA-GA: the full fine-tuning rate. Its init makes the first LoRA step approximate a full
//   fine-tuning step (paper, arXiv 2407.05000, section 3.2), and the author's advice (official
//   repo, issue #12) is that its best rate is roughly full fine-tuning's, about 10x below LoRA's.
// - LoRA (default init) and PiSSA: 10x the full fine-tuning rate, the usual LoRA/full ratio
//   (LoRA-GA issue #12; PiSSA, arXiv 2404.02948, trains with LoRA's rate).

import type { Comparison } from "../report/stats.js";

const FULL_LR = 5e-4;

export interface DemoMethod {
  /** `loraga train --method` value; also the run's name and directory. */
  method: string;
  lr: number;
  /** One line for the README / log: why this rate. */
  lrReason: string;
}

export const DEMO_METHODS: readonly DemoMethod[] = [
  { method: "lora", lr: 10 * FULL_LR, lrReason: "LoRA family: 10x the full fine-tuning rate" },
  {
    method: "lora-ga",
    lr: FULL_LR,
    lrReason: "LoRA-GA: the full fine-tuning rate (author's advice)",
  },
  { method: "pissa", lr: 10 * FULL_LR, lrReason: "LoRA family: 10x the full fine-tuning rate" },
  { method: "full", lr: FULL_LR, lrReason: "full fine-tuning" },
];

export const DEMO_METHOD_NAMES = DEMO_METHODS.map((m) => m.method);

export interface Verdict {
  /** Steps default LoRA trained, and its final (smoothed) training loss: the target. */
  loraSteps: number;
  targetLoss: number;
  /** First step at which LoRA-GA's smoothed training loss reached the target, or null. */
  loraGaSteps: number | null;
  /** loraGaSteps <= loraSteps / 2. */
  halfTheSteps: boolean;
  loraExactMatch: number | null;
  loraGaExactMatch: number | null;
  /** LoRA-GA's exact match >= LoRA's. */
  exactMatchAtLeastLora: boolean;
}

/** The verdict from a comparison whose target is the "lora" run's final loss; null without both runs. */
export function verdictOf(c: Comparison): Verdict | null {
  const lora = c.runs.find((r) => r.name === "lora");
  const ga = c.runs.find((r) => r.name === "lora-ga");
  if (lora === undefined || ga === undefined) return null;
  const loraGaSteps = ga.reached === null ? null : ga.reached.step;
  const loraExactMatch = lora.metrics.get("exact_match") ?? null;
  const loraGaExactMatch = ga.metrics.get("exact_match") ?? null;
  return {
    loraSteps: lora.steps,
    targetLoss: c.target.loss,
    loraGaSteps,
    halfTheSteps: loraGaSteps !== null && loraGaSteps <= lora.steps / 2,
    loraExactMatch,
    loraGaExactMatch,
    exactMatchAtLeastLora:
      loraExactMatch !== null && loraGaExactMatch !== null && loraGaExactMatch >= loraExactMatch,
  };
}

/** The verdict as text lines for the terminal. */
export function verdictText(v: Verdict): string {
  const pct = (x: number | null) => (x === null ? "-" : `${(100 * x).toFixed(1)}%`);
  const reached =
    v.loraGaSteps === null
      ? `LoRA-GA did not reach default LoRA's final training loss ${v.targetLoss.toFixed(4)} within ${v.loraSteps} steps`
      : `LoRA-GA reached default LoRA's final training loss ${v.targetLoss.toFixed(4)} at step ${v.loraGaSteps} of ${v.loraSteps} ` +
        `(${(v.loraSteps / v.loraGaSteps).toFixed(1)}x fewer steps; half the steps or fewer: ${v.halfTheSteps ? "yes" : "no"})`;
  const em = `held-out exact match: LoRA-GA ${pct(v.loraGaExactMatch)}, LoRA ${pct(v.loraExactMatch)} (LoRA-GA at least LoRA's: ${v.exactMatchAtLeastLora ? "yes" : "no"})`;
  return `${reached}\n${em}\n`;
}
