// `loraga compare` as a user runs it: synthetic run directories in a temp dir, a spawned process.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { runCli, tempDir } from "../helpers/cli.js";
import { logText, RUNS, writeRunDir } from "../report/synthetic.js";

describe("loraga compare", () => {
  test("writes the HTML report and prints the table", () => {
    const root = tempDir();
    const dirs = RUNS.map((r) => writeRunDir(root, r));
    const out = join(root, "report.html");
    const r = runCli(["compare", ...dirs, "--out", out, "--smooth", "1"]);
    expect(r.stderr).toBe(`wrote ${out}\n`);
    expect(r.status).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe(
      'target loss 2.0000 (final training loss of the run named "lora"; raw step losses)',
    );
    // lora-ga reaches 2.0 at step 2 (3.0 s of training, 8.0 s with its 5 s init); slow never does
    expect(lines.find((l) => l.startsWith("lora-ga "))).toMatch(
      /lora_ga\s+1e-3\s+4\s+6\.0 s\s+2\s+3\.0 s\s+8\.0 s/,
    );
    expect(lines.find((l) => l.startsWith("slow "))).toMatch(
      /not reached\s+not reached\s+not reached/,
    );
    const html = readFileSync(out, "utf8");
    expect(html).toContain('data-series="lora-ga"');
    expect(html).not.toContain("<script");
  });

  test("--target-loss overrides the baseline; --help has an example", () => {
    const root = tempDir();
    const dirs = RUNS.map((r) => writeRunDir(root, r));
    const r = runCli([
      "compare",
      ...dirs,
      "--out",
      join(root, "r.html"),
      "--target-loss",
      "4.5",
      "--smooth",
      "1",
      "-q",
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("");
    expect(readFileSync(join(root, "r.html"), "utf8")).toContain(
      "target loss 4.5000 (given with --target-loss",
    );
    const help = runCli(["compare", "--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain("loraga compare runs/lora runs/lora-ga --out report.html");
  });

  test("a malformed log line: error naming file:line, non-zero exit, no report", () => {
    const root = tempDir();
    const good = writeRunDir(root, RUNS[0]);
    const bad = writeRunDir(root, RUNS[1]);
    const lines = logText(RUNS[1]).split("\n");
    lines[2] = '{"type":"train","step":3,"loss":';
    writeFileSync(join(bad, "train.jsonl"), lines.join("\n"));
    const out = join(root, "report.html");
    const r = runCli(["compare", good, bad, "--out", out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^loraga: error: ${join(bad, "train.jsonl").replace(/[.]/g, "\\.")}:3: not valid JSON`,
      ),
    );
    expect(existsSync(out)).toBe(false);
    const missing = runCli(["compare", join(root, "nope"), "--out", out]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain("no train.jsonl");
  });
});
