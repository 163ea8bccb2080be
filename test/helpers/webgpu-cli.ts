// What the spawned-CLI WebGPU tests (test/cli/webgpu-*.test.ts) share: whether they run, a
// training run's per-step records, and the comparisons of a --kernels webgpu run with the same
// run on --kernels ref (per-step loss and gradient norm; gradient files tensor by tensor).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { runCli } from "./cli.js";
import { GPU_CONTEXT } from "./webgpu.js";

/** With a WebGPU device, or in CI (where no adapter makes them fail, never skip). */
export const WEBGPU_CLI_RUNS = GPU_CONTEXT !== null || process.env.CI !== undefined;

/** One "train" line of a run's train.jsonl. */
export interface StepRecord {
  type: string;
  loss: number;
  grad_norm: number;
}

/**
 * Runs `loraga train` with `args` (which write the run to `out`), expects it to succeed with
 * nothing on stderr but warnings, and returns the run's per-step "train" records.
 */
export function trainSteps(args: string[], out: string): StepRecord[] {
  const r = runCli(["train", ...args], { timeoutMs: 600_000 });
  expect(r.stderr.replace(/^Warning: .*\n/gm, ""), r.stderr).toBe("");
  expect(r.status).toBe(0);
  return readFileSync(join(out, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as StepRecord)
    .filter((record) => record.type === "train");
}

/** 8 steps each, every step's loss within 1e-4 and gradient norm within 1e-4 of ref's. */
export function expectSameSteps(got: StepRecord[], want: StepRecord[]): void {
  expect(got.length).toBe(8);
  expect(want.length).toBe(8);
  got.forEach((g, i) => {
    expect(Math.abs(g.loss - want[i].loss), `loss of step ${i + 1}`).toBeLessThanOrEqual(1e-4);
    const normDiff = Math.abs(g.grad_norm - want[i].grad_norm);
    expect(normDiff, `gradient norm of step ${i + 1}`).toBeLessThanOrEqual(
      1e-4 * want[i].grad_norm,
    );
  });
}

/** Each tensor of `want` within tol * (its largest |value|) of got's, elementwise. */
export function expectTensorsClose(
  got: Map<string, Float32Array>,
  want: Map<string, Float32Array>,
  tol: number,
): void {
  for (const [name, w] of want) {
    const g = got.get(name) as Float32Array;
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < w.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(g[i] - w[i]));
      maxAbs = Math.max(maxAbs, Math.abs(w[i]));
    }
    expect(maxDiff, `${name}: largest |gradient| ${maxAbs}`).toBeLessThanOrEqual(tol * maxAbs);
  }
}
