// The demo's figures across seeds (mean, sample standard deviation, steps to LoRA's mean final
// loss, the half-the-steps verdict) and the generated conclusion, from hand-made run logs whose
// expected values are worked out by hand in the comments.
import { describe, expect, test } from "vitest";
import { conclusion, type SeedRun, statOf, summarise } from "../../src/demo/summary.js";
import { parseTrainLog } from "../../src/report/run-log.js";

function run(method: string, seed: number, losses: number[], exactMatch: number): SeedRun {
  const text = losses
    .map((loss, i) => JSON.stringify({ type: "train", step: i + 1, loss, lr: 0.001 }))
    .join("\n");
  const summary = {
    name: method,
    method,
    model: null,
    r: 8,
    init_seconds: null,
    estimate_seconds: null,
    svd_seconds: null,
    final_metrics: [],
  };
  const log = { name: method, summary, ...parseTrainLog(text, `${method}-${seed}.jsonl`) };
  return { method, lr: 0.001, seed, log, exactMatch };
}

// Constant tails so that the 10-step trailing mean is easy to work out: 20 steps each.
const flat = (head: number[], tail: number) => [...head, ...Array(20 - head.length).fill(tail)];

describe("demo summary over seeds", () => {
  test("mean and sample standard deviation", () => {
    // mean 2; deviations -1, 0, 1; variance 2 / (3 - 1) = 1
    expect(statOf([1, 2, 3])).toEqual({ mean: 2, sd: 1, n: 3 });
    expect(statOf([5])).toEqual({ mean: 5, sd: 0, n: 1 });
  });

  test("target = LoRA's mean final loss; LoRA-GA within half the steps in every seed", () => {
    // LoRA's finals (mean of the last 10 of its constant tails): 1.0 and 1.2 -> target 1.1.
    // LoRA-GA, 2 steps at 4 then 0.5: the trailing mean at step k < 10 is (8 + 0.5 (k - 2)) / k,
    // <= 1.1 only for k >= 11.7; step 10: (2 * 4 + 8 * 0.5) / 10 = 1.2; step 11: (4 + 9 * 0.5) / 10
    // = 0.85 -> step 11.
    // Half of 20 steps is 10: not within half.
    const slow = summarise("p", [
      run("lora", 0, flat([], 1.0), 0.1),
      run("lora", 1, flat([], 1.2), 0.3),
      run("lora-ga", 0, flat([4, 4], 0.5), 0.2),
      run("lora-ga", 1, flat([4, 4], 0.5), 0.2),
    ]);
    expect(slow.target).toBeCloseTo(1.1, 12);
    const ga = slow.methods.find((m) => m.method === "lora-ga");
    expect(ga?.stepsToTarget).toEqual({ mean: 11, sd: 0, n: 2 });
    expect(slow.halfTheSteps).toBe(false);
    // a head of 1 step: step 1 is 4, step 2 (4 + 0.5) / 2 = 2.25, ..., step k: (4 + 0.5 (k - 1)) / k
    // <= 1.1 when 3.5 <= 0.6 k -> k >= 5.83: step 6 <= 10 in both seeds
    const fast = summarise("p", [
      run("lora", 0, flat([], 1.0), 0.1),
      run("lora", 1, flat([], 1.2), 0.3),
      run("lora-ga", 0, flat([4], 0.5), 0.2),
      run("lora-ga", 1, flat([4], 0.5), 0.2),
    ]);
    expect(fast.methods.find((m) => m.method === "lora-ga")?.stepsToTarget?.mean).toBe(6);
    expect(fast.halfTheSteps).toBe(true);
    // LoRA: exact match 0.1 and 0.3 -> 20.0% ± 14.1 (sd = 0.1 * sqrt 2)
    const text = conclusion(fast, "Paper protocol");
    expect(text).toContain("in 2 of 2 seeds, after 6 ± 0 steps of 20");
    expect(text).toContain("did get there in half the steps or fewer");
    expect(text).toContain("LoRA-GA 20.0% ± 0.0, within the seed spread of LoRA's 20.0% ± 14.1");
  });

  test("never reached", () => {
    const p = summarise("p", [run("lora", 0, flat([], 1.0), 0), run("lora-ga", 0, flat([], 2), 0)]);
    expect(p.methods[1].reachedCount).toBe(0);
    expect(p.halfTheSteps).toBe(false);
    expect(conclusion(p, "x")).toContain(
      "LoRA-GA never reached default LoRA's mean final training loss (1.000)",
    );
  });
});
