// The demo's verdict on "LoRA-GA reaches default LoRA's final training loss in at most half the
// steps, with at least its exact match", from hand-made run logs (expected values worked by hand).
import { describe, expect, test } from "vitest";
import { verdictOf, verdictText } from "../../src/demo/methods.js";
import { parseTrainLog, type RunLog } from "../../src/report/run-log.js";
import { compareRuns } from "../../src/report/stats.js";

function run(name: string, losses: number[], exactMatch: number): RunLog {
  const text = losses
    .map((loss, i) => JSON.stringify({ type: "train", step: i + 1, loss }))
    .join("\n");
  const summary = {
    name,
    method: name,
    model: null,
    r: 8,
    init_seconds: null,
    estimate_seconds: null,
    svd_seconds: null,
    final_metrics: [{ name: "exact_match", value: exactMatch }],
  };
  return { name, summary, ...parseTrainLog(text, `${name}.jsonl`) };
}

describe("demo verdict", () => {
  test("LoRA-GA at the target by half the steps, exact match at least LoRA's", () => {
    // raw losses (smoothing window 1): LoRA ends at 1.0; LoRA-GA first <= 1.0 at step 4 of 8
    const c = compareRuns(
      [
        run("lora", [4, 3, 2.5, 2, 1.6, 1.3, 1.1, 1.0], 0.2),
        run("lora-ga", [4, 2, 1.5, 1.0, 0.9, 0.8, 0.7, 0.7], 0.2),
      ],
      { smoothWindow: 1 },
    );
    const v = verdictOf(c);
    expect(v).toEqual({
      loraSteps: 8,
      targetLoss: 1.0,
      loraGaSteps: 4,
      halfTheSteps: true,
      loraExactMatch: 0.2,
      loraGaExactMatch: 0.2,
      exactMatchAtLeastLora: true,
    });
    expect(verdictText(v as NonNullable<typeof v>)).toContain(
      "at step 4 of 8 (2.0x fewer steps; half the steps or fewer: yes)",
    );
  });

  test("one step past half, never reached, lower exact match; no verdict without both runs", () => {
    const late = compareRuns(
      [run("lora", [4, 3, 2, 1], 0.5), run("lora-ga", [4, 3, 1, 0.5], 0.4)],
      { smoothWindow: 1 },
    );
    expect(verdictOf(late)).toMatchObject({
      loraGaSteps: 3,
      halfTheSteps: false,
      exactMatchAtLeastLora: false,
    });
    const never = compareRuns([run("lora", [4, 1], 0.5), run("lora-ga", [4, 2], 0.5)], {
      smoothWindow: 1,
    });
    const v = verdictOf(never);
    expect(v).toMatchObject({
      loraGaSteps: null,
      halfTheSteps: false,
      exactMatchAtLeastLora: true,
    });
    expect(verdictText(v as NonNullable<typeof v>)).toContain(
      "did not reach default LoRA's final training loss 1.0000 within 2 steps",
    );
    expect(
      verdictOf(compareRuns([run("lora", [4, 1], 0.5), run("full", [4, 0.5], 0.5)])),
    ).toBeNull();
  });
});
