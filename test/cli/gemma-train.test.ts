// `loraga train --method lora-ga` and `loraga generate` end to end on the tiny random Gemma 3
// checkpoint (gemma3_text: sliding-window and global layers, tied lm_head) with the character
// tokenizer: the run finishes with finite losses, and its converted adapter on the original base
// gives the same model as the trained adapter on the offset base.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { collate } from "../../src/data/batches.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { loadModel } from "../../src/models/model.js";
import { loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { expectAllclose } from "../helpers/allclose.js";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";

const root = tempDir("loraga-gemma-");
const modelDir = join(root, "model");
const data = join(root, "train.jsonl");
let kernels: Kernels;

beforeAll(async () => {
  copyTinyModel(modelDir, "gemma3");
  const rows = [];
  for (let i = 0; i < 8; i++) {
    const a = (i * 7) % 10;
    const b = (i * 3) % 10;
    rows.push(JSON.stringify({ prompt: `Q: ${a} plus ${b}? A:`, completion: ` ${a + b}.` }));
  }
  writeFileSync(data, `${rows.join("\n")}\n`);
  kernels = await createKernels("ref", { heap: new Heap() });
});
afterAll(async () => {
  await kernels.dispose();
});

test("loraga train --method lora-ga on gemma3_text, then generate with the adapter", async () => {
  const run = join(root, "lora-ga");
  const r = runCli([
    "train",
    "--model",
    modelDir,
    "--data",
    data,
    "--method",
    "lora-ga",
    "--ga-batches",
    "2",
    "--r",
    "2",
    "--target",
    "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
    "--batch-size",
    "2",
    "--max-length",
    "24",
    "--lr",
    "0.005",
    "--steps",
    "3",
    "--kernels",
    "ref",
    "-q",
    "--out",
    run,
  ]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  for (const f of ["init-adapter", "adapter", "adapter-converted", "run.json", "train.jsonl"])
    expect(existsSync(join(run, f)), f).toBe(true);
  const losses = readFileSync(join(run, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((x) => x.type === "train")
    .map((x) => x.loss as number);
  expect(losses.length).toBe(3);
  for (const loss of losses) expect(Number.isFinite(loss) && loss > 0).toBe(true);

  // seq_len 12 > the fixture's sliding_window 4: the local layers' mask matters here
  const batch = collate(
    [{ inputIds: [2, 50, 20, 30, 40, 60, 70, 11, 12, 13, 14, 15], labels: [], source: "" }],
    { maxLength: 16, padTokenId: 0 },
  );
  const onOffset = await loadModel(modelDir, { kernels });
  await loadPeftModel(onOffset, join(run, "adapter"), {
    initAdapterDir: join(run, "init-adapter"),
  });
  const trained = onOffset.forward(batch).toArray();
  const onOriginal = await loadModel(modelDir, { kernels });
  await loadPeftModel(onOriginal, join(run, "adapter-converted"));
  const converted = onOriginal.forward(batch).toArray();
  const base = (await loadModel(modelDir, { kernels })).forward(batch).toArray();
  const scale = Math.max(...base.map(Math.abs));
  expectAllclose(converted, trained, {
    rtol: 1e-5,
    atol: 1e-5 * scale,
    label: "converted vs trained",
  });
  expect(Math.max(...trained.map((v, i) => Math.abs(v - base[i])))).toBeGreaterThan(1e-4);

  const g = runCli([
    "generate",
    "--model",
    modelDir,
    "--adapter",
    join(run, "adapter-converted"),
    "--prompt",
    "Q: 3 plus 4? A:",
    "--max-new-tokens",
    "6",
    "--kernels",
    "ref",
  ]);
  expect(g.stderr).toBe("");
  expect(g.status).toBe(0);
  expect(g.stdout.length).toBeGreaterThan(0);
});
