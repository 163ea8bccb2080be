// `loraga demo` as a user runs it (spawned process, real files): --quick on the committed demo
// model writes the data, one run directory per method, rate and seed, exact match in every
// run.json, the report with both protocols and the summary tables; --sweep writes the tuned rates;
// bad input exits 2 with a message that names the problem.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { runCli, tempDir } from "../helpers/cli.js";

const root = tempDir("loraga-demo-");

// tuned rates for the test, so that the test does not depend on the committed sweep
const rates = join(root, "rates.json");
writeFileSync(
  rates,
  JSON.stringify({ rates: { lora: 2e-3, "lora-ga": 5e-4, full: 5e-4 }, sweep: {}, settings: {} }),
);

describe("loraga demo", () => {
  test("--quick: both protocols, two seeds, shared runs trained once, report and tables", () => {
    const out = join(root, "demo");
    const r = runCli(
      [
        "demo",
        "--quick",
        "--methods",
        "lora,lora-ga,full",
        "--seeds",
        "2",
        "--rates",
        rates,
        "--test-rows",
        "4",
        "--max-new-tokens",
        "12",
        "--threads",
        "2",
        "--out",
        out,
      ],
      { timeoutMs: 110_000 },
    );
    expect(r.stderr).not.toContain("error");
    expect(r.status).toBe(0);
    for (const f of ["data/train.jsonl", "data/test.jsonl", "data/validation.jsonl"])
      expect(existsSync(join(out, f)), f).toBe(true);
    // paper protocol: all at 5e-4; tuned: lora at 2e-3 (lora-ga and full are shared): 4 x 2 runs
    const dirs = ["lora-lr5e-4", "lora-ga-lr5e-4", "full-lr5e-4", "lora-lr2e-3"].flatMap((d) => [
      `${d}-seed0`,
      `${d}-seed1`,
    ]);
    for (const d of dirs) {
      const summary = JSON.parse(readFileSync(join(out, "runs", d, "run.json"), "utf8"));
      expect(summary).toMatchObject({ steps: 4 });
      const em = summary.final_metrics.find((x: { name: string }) => x.name === "exact_match");
      expect(em.value).toBeGreaterThanOrEqual(0);
      expect(em.value).toBeLessThanOrEqual(1);
    }
    expect(r.stderr).toContain("[8/8] lora lr 2e-3 seed 1: training");
    expect(existsSync(join(out, "runs", "full-lr5e-4-seed0", "model", "model.safetensors"))).toBe(
      true,
    );
    expect(r.stdout).toMatch(
      /^Paper protocol: one learning rate \(every method at the full fine-tuning rate, lr 0.0005\)$/m,
    );
    expect(r.stdout).toMatch(/^lora +2e-3 /m);
    expect(r.stdout).toMatch(/ \d+\.\d% ± \d+\.\d /);
    expect(r.stdout).toContain("2 seeds per method, 4 steps");
    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html).toContain("Tuned protocol: each method at its best rate");
    expect(html.match(/class="band"/g)?.length).toBe(6); // 3 methods x 2 protocols
    expect(html).toContain("loss (log scale)");
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    expect(summary.protocols).toHaveLength(2);
    expect(summary.protocols[0].methods[0].exactMatch.n).toBe(2);
    const data = readFileSync(join(out, "data", "test.jsonl"), "utf8")
      .trim()
      .split("\n");
    expect(data).toHaveLength(4);
    expect(JSON.parse(data[0]).completion).toMatch(/#### \d+$/);
  }, 120_000);

  test("--sweep: every rate of the grid on the validation split; the lowest loss wins", () => {
    const out = join(root, "sweep");
    const r = runCli(
      ["demo", "--quick", "--sweep", "--methods", "full", "--threads", "2", "--out", out],
      { timeoutMs: 60_000 },
    );
    expect(r.status).toBe(0);
    const tuned = JSON.parse(readFileSync(join(out, "tuned-rates.json"), "utf8"));
    const points: [number, number][] = tuned.sweep.full;
    expect(points.map((p) => p[0])).toEqual([2e-4, 5e-4, 1e-3, 2e-3]);
    const best = points.reduce((a, b) => (b[1] < a[1] ? b : a));
    expect(tuned.rates).toEqual({ full: best[0] });
  }, 70_000);

  test("an unknown method exits 2 and lists the methods", () => {
    const r = runCli(["demo", "--quick", "--methods", "lora,dora", "--out", join(root, "bad")]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown method "dora"');
    expect(r.stderr).toContain("lora, lora-ga, pissa, lora-one, full");
    expect(existsSync(join(root, "bad"))).toBe(false);
  });

  test("refuses an --out directory it did not write, and a --model without a tokenizer", () => {
    const other = join(root, "other");
    mkdirSync(other);
    writeFileSync(join(other, "notes.txt"), "mine");
    const r = runCli(["demo", "--quick", "--out", other]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("not an earlier demo's output");
    expect(readFileSync(join(other, "notes.txt"), "utf8")).toBe("mine");
    const bare = join(root, "bare-model");
    mkdirSync(bare);
    writeFileSync(join(bare, "config.json"), "{}");
    const m = runCli(["demo", "--quick", "--model", bare, "--out", join(root, "x")]);
    expect(m.status).toBe(2);
    expect(m.stderr).toContain("no model.safetensors");
  });
});
