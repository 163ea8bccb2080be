// `--attention tiled|full` through the CLI, in spawned processes: the two attention
// implementations (models/attention.ts) give the same results to float rounding, so train logs the
// same per-step losses (to 1e-6 relative), estimate writes the same gradients (to 1e-5 relative)
// and eval prints the same loss; the engine's peak memory in run.json shows that the flag reached
// the model (the full path keeps (B, H, T, T) probabilities per layer).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";
import { relErr } from "../helpers/model-fixtures.js";

const root = tempDir("loraga-attn-");
const modelDir = join(root, "model");
const data = join(root, "train.jsonl");

beforeAll(() => {
  copyTinyModel(modelDir);
  const rows = [];
  for (let i = 0; i < 8; i++) {
    const a = (i * 7) % 10;
    const b = (i * 3) % 10;
    rows.push(JSON.stringify({ prompt: `Q: ${a} plus ${b}? A:`, completion: ` ${a + b}.` }));
  }
  writeFileSync(data, `${rows.join("\n")}\n`);
});

const common = ["--model", modelDir, "--data", data, "--batch-size", "2", "--max-length", "32"];
const IMPLS = ["tiled", "full"] as const;

test("train: the same per-step losses; full attention peaks higher", () => {
  const runs = IMPLS.map((impl) => join(root, `train-${impl}`));
  for (const [i, out] of runs.entries()) {
    const r = runCli([
      "train",
      ...common,
      "--r",
      "2",
      "--target",
      "q_proj,v_proj",
      "--steps",
      "3",
      "--lr",
      "0.005",
      "--kernels",
      "wasm",
      "--attention",
      IMPLS[i],
      "--out",
      out,
      "-q",
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  }
  const [tiled, full] = runs.map((dir) =>
    readFileSync(join(dir, "train.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((r) => r.type === "train")
      .map((r) => r.loss as number),
  );
  expect(tiled).toHaveLength(3);
  for (const [s, loss] of tiled.entries())
    expect(Math.abs(loss - full[s]) / full[s], `step ${s}`).toBeLessThanOrEqual(1e-6);
  const [tiledPeak, fullPeak] = runs.map(
    (dir) => JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).peak_memory as number,
  );
  expect(tiledPeak).toBeLessThan(fullPeak);
});

test("estimate: the same gradients", async () => {
  const files = IMPLS.map((impl) => join(root, `grads-${impl}.safetensors`));
  for (const [i, out] of files.entries()) {
    const r = runCli([
      "estimate",
      ...common,
      "--target",
      "q_proj,v_proj",
      "--batches",
      "2",
      "--kernels",
      "wasm",
      "--attention",
      IMPLS[i],
      "--out",
      out,
      "-q",
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  }
  const [tiled, full] = await Promise.all(files.map((f) => SafetensorsFile.open(f)));
  try {
    expect([...tiled.entries.keys()].sort()).toEqual([...full.entries.keys()].sort());
    for (const key of full.entries.keys()) {
      const { rel } = relErr(await tiled.readF32(key), await full.readF32(key));
      expect(rel, key).toBeLessThanOrEqual(1e-5);
    }
  } finally {
    await tiled.close();
    await full.close();
  }
});

test("eval: the same loss; a bad value is a usage error", () => {
  const losses = IMPLS.map((impl) => {
    const r = runCli(["eval", ...common, "--kernels", "wasm", "--attention", impl]);
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout).loss as number;
  });
  expect(Math.abs(losses[0] - losses[1]) / losses[1]).toBeLessThanOrEqual(1e-6);
  const bad = runCli(["eval", ...common, "--attention", "flash"]);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/--attention must be one of tiled, full, got "flash"/);
});
