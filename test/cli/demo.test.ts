// `loraga demo` as a user runs it (spawned process, real files): --quick on the committed demo
// model writes the data, one run directory per method, exact match in every run.json, the report
// and the summary table; bad input exits 2 with a message that names the problem.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { runCli, tempDir } from "../helpers/cli.js";

const root = tempDir("loraga-demo-");
const METHODS = ["lora", "lora-ga", "pissa", "full"];

describe("loraga demo", () => {
  test("--quick: runs every method on the embedded model, writes run dirs, report.html and the table", () => {
    const out = join(root, "demo");
    const r = runCli(
      [
        "demo",
        "--quick",
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
    for (const f of ["data/train.jsonl", "data/test.jsonl", "report.html", "summary.json"])
      expect(existsSync(join(out, f)), f).toBe(true);
    for (const m of METHODS) {
      const summary = JSON.parse(readFileSync(join(out, m, "run.json"), "utf8"));
      expect(summary).toMatchObject({ name: m, method: m, steps: 4 });
      const em = summary.final_metrics.find((x: { name: string }) => x.name === "exact_match");
      expect(em.value).toBeGreaterThanOrEqual(0);
      expect(em.value).toBeLessThanOrEqual(1);
      expect(r.stdout).toMatch(new RegExp(`^${m} +${m} +4 `, "m"));
    }
    expect(existsSync(join(out, "full", "model", "model.safetensors"))).toBe(true);
    expect(existsSync(join(out, "lora-ga", "adapter-converted", "adapter_config.json"))).toBe(true);
    expect(r.stdout).toContain('final training loss of the run named "lora"');
    expect(r.stdout).toMatch(/held-out exact match: LoRA-GA \d/);
    const html = readFileSync(join(out, "report.html"), "utf8");
    for (const m of METHODS) expect(html).toContain(`data-series="${m}"`);
    expect(html).toContain("exact_match");
    const data = readFileSync(join(out, "data", "test.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(data).toHaveLength(4);
    expect(data[0].completion).toMatch(/#### \d+$/);
  }, 120_000);

  test("an unknown method exits 2 and lists the methods", () => {
    const r = runCli(["demo", "--quick", "--methods", "lora,dora", "--out", join(root, "bad")]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown method "dora"');
    expect(r.stderr).toContain("lora, lora-ga, pissa, full");
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
