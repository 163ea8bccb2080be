// `--gradient-checkpointing` through the CLI, in spawned processes: the library recomputes each
// layer's forward in the backward pass and guarantees bit-identical losses and gradients
// (models/model.ts MemoryOptions), so a run with the switch must log exactly the same per-step
// losses as one without, and an estimation must write the same gradient cache, byte for byte.
// The engine's peak memory (run.json) shows that the switch reached the model.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";

const root = tempDir("loraga-gc-");
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

function trainLosses(dir: string): number[] {
  return readFileSync(join(dir, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === "train")
    .map((r) => r.loss as number);
}

describe.each(["ref", "wasm"])("--gradient-checkpointing (%s kernels)", (kernels) => {
  test("train --method lora-ga: the same per-step losses, less peak memory", () => {
    const runs = ["plain", "checkpointed"].map((name) => join(root, `${kernels}-${name}`));
    for (const [i, out] of runs.entries()) {
      const r = runCli([
        "train",
        ...common,
        "--method",
        "lora-ga",
        "--r",
        "2",
        "--target",
        "q_proj,v_proj",
        "--ga-batches",
        "2",
        "--steps",
        "3",
        "--lr",
        "0.005",
        "--kernels",
        kernels,
        "--out",
        out,
        "-q",
        ...(i === 1 ? ["--gradient-checkpointing"] : []),
      ]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
    const [plain, checkpointed] = runs.map(trainLosses);
    expect(plain).toHaveLength(3);
    expect(checkpointed).toEqual(plain);
    const [plainPeak, checkpointedPeak] = runs.map(
      (dir) => JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).peak_memory as number,
    );
    expect(checkpointedPeak).toBeLessThan(plainPeak);
  });

  test("estimate: the same gradient cache, byte for byte", () => {
    const files = ["plain", "checkpointed"].map((n) => join(root, `${kernels}-${n}.safetensors`));
    for (const [i, out] of files.entries()) {
      const r = runCli([
        "estimate",
        ...common,
        "--target",
        "q_proj,v_proj",
        "--batches",
        "2",
        "--kernels",
        kernels,
        "--out",
        out,
        "-q",
        ...(i === 1 ? ["--gradient-checkpointing"] : []),
      ]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
    expect(readFileSync(files[1]).equals(readFileSync(files[0]))).toBe(true);
  });
});
