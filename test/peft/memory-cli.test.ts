// The memory flags of `loraga estimate` / `loraga init`: --max-grad-memory gives the same gradient
// cache as plain estimation and logs the bounded peak; --weight-dtype bf16 and --quantize nf4 run
// the two-stage flow and log the logits error of the quantized base.

import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { runCli, tempDir } from "../helpers/cli.js";
import { readTensors } from "../helpers/tensors.js";

const MODEL = "test/fixtures/models/llama-gqa";
const DATA = [
  "--data",
  "test/fixtures/e2e/data.jsonl",
  "--batch-size",
  "2",
  "--max-length",
  "10",
  "--batches",
  "3",
  "--kernels",
  "ref",
];
const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("estimate --max-grad-memory writes the plain estimation's gradients and logs the peak", async () => {
  const plain = runCli([
    "estimate",
    "--model",
    MODEL,
    ...DATA,
    "--out",
    join(dir, "plain.safetensors"),
  ]);
  expect(plain.status, plain.stderr + plain.stdout).toBe(0);
  expect(plain.stderr).toMatch(
    /estimation: peak engine memory .* \(plain: 3 passes, at most .* of gradients on the heap, 0 B moved off it/,
  );
  const bounded = runCli([
    "estimate",
    "--model",
    MODEL,
    ...DATA,
    "--max-grad-memory",
    "8K",
    "--out",
    join(dir, "bounded.safetensors"),
  ]);
  expect(bounded.status, bounded.stderr).toBe(0);
  // one pass per batch; sums leave the heap as backward reaches the next layers
  expect(bounded.stderr).toMatch(
    /\(bounded: 3 passes, at most [\d.]+ KiB of gradients on the heap, [\d.]+ KiB moved off it/,
  );
  const a = await readTensors(join(dir, "plain.safetensors"));
  const b = await readTensors(join(dir, "bounded.safetensors"));
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [name, data] of a) expect(b.get(name), name).toEqual(data);
  const bad = runCli([
    "estimate",
    "--model",
    MODEL,
    ...DATA,
    "--max-grad-memory",
    "lots",
    "--out",
    join(dir, "x.safetensors"),
  ]);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/--max-grad-memory must be a size/);
});

test("init --weight-dtype bf16 --quantize nf4 logs the quantized base's logits error", () => {
  const r = runCli([
    "init",
    "--model",
    MODEL,
    ...DATA,
    "--target",
    "q_proj,v_proj",
    "--r",
    "2",
    "--weight-dtype",
    "bf16",
    "--max-grad-memory",
    "8K",
    "--quantize",
    "nf4",
    "--out",
    join(dir, "init"),
  ]);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toMatch(
    /quantized linear weights to nf4: .* logits max rel error vs float \d\.\d+e[-+]\d+/,
  );
  expect(r.stderr).toMatch(/initialised 4 modules/);
});
