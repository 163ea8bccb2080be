// The LoRA-GA workflow through the `loraga` command, as a user runs it: estimate -> init ->
// (training elsewhere) -> convert -> merge, checked against PEFT 0.21 fixtures
// (scripts/fixtures/make_loraga_e2e.py, make_tiny_archs.py) and against the model's own outputs.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { type Batch, loadModel } from "../../src/models/model.js";
import { loadAdapter, saveAdapter } from "../../src/peft/adapter-io.js";
import { loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { expectAllclose } from "../helpers/allclose.js";
import { runCli, tempDir } from "../helpers/cli.js";

const E2E = "test/fixtures/e2e";
const TARGETS: Record<string, string> = {
  "llama-gqa": "q_proj,v_proj,down_proj",
  gpt2: "c_attn,c_fc",
  // scripts/fixtures/make_tiny_archs.py: every linear layer (phi3: the fused projections)
  qwen3: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
  smollm3: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
  phi3: "qkv_proj,o_proj,gate_up_proj,down_proj",
  "gemma3-bias": "q_proj,v_proj,down_proj",
};
const MODELS = Object.keys(TARGETS);

let kernels: Kernels;
beforeAll(async () => {
  kernels = await createKernels("ref", { heap: new Heap() });
});
afterAll(async () => {
  await kernels.dispose();
});

async function logitsOf(modelDir: string, batch: Batch, adapter?: { dir: string; init?: string }) {
  const model = await loadModel(modelDir, { kernels });
  if (adapter !== undefined) {
    await loadPeftModel(
      model,
      adapter.dir,
      adapter.init === undefined ? {} : { initAdapterDir: adapter.init },
    );
  }
  const logits = model.forward(batch).toArray();
  model.dispose();
  return logits;
}

async function fixtureBatch(name: string): Promise<{ batch: Batch; file: SafetensorsFile }> {
  const file = await SafetensorsFile.open(`${E2E}/${name}/converted-logits.safetensors`);
  const [B, T] = file.entries.get("input_ids")?.shape ?? [0, 0];
  const readInts = async (key: string) => {
    const t = kernels.heap.tensor([B, T], "i32");
    await file.readInto(key, t);
    const values = t.i32().slice();
    t.dispose();
    return values;
  };
  return {
    batch: {
      batchSize: B,
      seqLen: T,
      inputIds: await readInts("input_ids"),
      attentionMask: await readInts("attention_mask"),
    },
    file,
  };
}

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe.each(MODELS)("loraga CLI on %s", (name) => {
  const model = `test/fixtures/models/${name}`;
  const dir = tempDir();
  const grads = join(dir, "grads.safetensors");
  const estimateArgs = [
    "--data",
    `${E2E}/data.jsonl`,
    "--target",
    TARGETS[name],
    "--batch-size",
    "2",
    "--max-length",
    "10",
    "--batches",
    "3",
  ];

  test("estimate writes PEFT's gradients", async () => {
    const r = runCli([
      "estimate",
      "--model",
      model,
      ...estimateArgs,
      "--out",
      grads,
      "--kernels",
      "ref",
    ]);
    expect(r.stderr).toMatch(/wrote \d+ gradients \(3 batches/);
    expect(r.status).toBe(0);
    const ours = await SafetensorsFile.open(grads);
    const peft = await SafetensorsFile.open(`${E2E}/${name}/grads.safetensors`);
    expect([...ours.entries.keys()].sort()).toEqual([...peft.entries.keys()].sort());
    for (const key of peft.entries.keys()) {
      const expected = await peft.readF32(key);
      expectAllclose(await ours.readF32(key), expected, {
        rtol: 1e-4,
        atol: 1e-4 * maxAbs(expected),
        label: key,
      });
    }
    await ours.close();
    await peft.close();
  });

  test("init from the gradients leaves the model's logits unchanged; convert gives the same model on the original base", async () => {
    const init = join(dir, "init");
    const r = runCli([
      "init",
      "--model",
      model,
      "--grads",
      grads,
      "--target",
      TARGETS[name],
      "--r",
      "2",
      "--alpha",
      "4",
      "--out",
      init,
      "-q",
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const { batch, file } = await fixtureBatch(name);
    await file.close();
    const base = await logitsOf(model, batch);
    const withInit = await logitsOf(model, batch, { dir: init });
    expectAllclose(withInit, base, {
      rtol: 1e-5,
      atol: 1e-5 * maxAbs(base),
      label: "init adapter on W'",
    });

    // "training": move the factors, save as the final adapter for the offset base
    const loaded = await loadAdapter(init, (await loadModel(model, { kernels })).linears());
    const trained = new Map(
      [...loaded.weights].map(([p, w]) => [
        p,
        {
          A: w.A.map((v, i) => v + 0.01 * Math.sin(i)),
          B: w.B.map((v, i) => v + 0.02 * Math.cos(i)),
        },
      ]),
    );
    const final = join(dir, "final");
    await saveAdapter(final, loaded.config, trained, { init: { ...loaded.init, trained: true } });
    const onOffsetBase = await logitsOf(model, batch, { dir: final, init });
    expect(maxAbs(onOffsetBase.map((v, i) => v - base[i]))).toBeGreaterThan(1e-3); // training changed the model

    const converted = join(dir, "converted");
    const c = runCli(["convert", "--init", init, "--final", final, "--out", converted]);
    expect(c.status).toBe(0);
    const onOriginal = await logitsOf(model, batch, { dir: converted });
    expectAllclose(onOriginal, onOffsetBase, {
      rtol: 1e-5,
      atol: 1e-5 * maxAbs(base),
      label: "converted on W",
    });
    const config = JSON.parse(
      (await import("node:fs")).readFileSync(join(converted, "adapter_config.json"), "utf8"),
    );
    expect(config).toMatchObject({
      peft_type: "LORA",
      r: 4,
      lora_alpha: 8,
      init_lora_weights: true,
    });
  });

  test("merge of PEFT's converted adapter reproduces PEFT's merged logits", async () => {
    const out = join(dir, "merged");
    const r = runCli([
      "merge",
      "--model",
      model,
      "--adapter",
      `${E2E}/${name}/converted`,
      "--out",
      out,
      "--kernels",
      "ref",
      "-q",
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const { batch, file } = await fixtureBatch(name);
    const expected = await file.readF32("merged_logits");
    await file.close();
    expectAllclose(await logitsOf(out, batch), expected, {
      rtol: 1e-5,
      atol: 1e-5 * maxAbs(expected),
      label: "merged",
    });
    // un-merged: the converted adapter on the original base equals PEFT's PeftModel logits
    const file2 = await SafetensorsFile.open(`${E2E}/${name}/converted-logits.safetensors`);
    const peftLogits = await file2.readF32("logits");
    await file2.close();
    const ours = await logitsOf(model, batch, { dir: `${E2E}/${name}/converted` });
    expectAllclose(ours, peftLogits, {
      rtol: 1e-5,
      atol: 1e-5 * maxAbs(peftLogits),
      label: "adapter on base",
    });
  });
});

describe.each(MODELS)("an adapter written by loraga, loaded by PEFT (%s)", (name) => {
  // scripts/fixtures/make_loraga_written_adapters.sh: loraga init + convert wrote loraga-converted/,
  // PEFT 0.21 loaded it with PeftModel.from_pretrained on the original base and recorded its logits.
  test("PEFT's logits with it equal loraga's", async () => {
    const { batch, file } = await fixtureBatch(name);
    await file.close();
    const peft = await SafetensorsFile.open(
      `${E2E}/${name}/loraga-converted-peft-logits.safetensors`,
    );
    const expected = await peft.readF32("logits");
    const merged = await peft.readF32("merged_logits");
    await peft.close();
    const ours = await logitsOf(`test/fixtures/models/${name}`, batch, {
      dir: `${E2E}/${name}/loraga-converted`,
    });
    expectAllclose(ours, expected, {
      rtol: 1e-5,
      atol: 1e-5 * maxAbs(expected),
      label: "adapter",
    });
    expectAllclose(merged, expected, {
      rtol: 1e-5,
      atol: 1e-5 * maxAbs(expected),
      label: "PEFT merged",
    });
    const base = await logitsOf(`test/fixtures/models/${name}`, batch);
    expect(maxAbs(ours.map((v, i) => v - base[i]))).toBeGreaterThan(1e-3); // the adapter does something
  });
});

test("estimate --shuffle takes seeded rows: reproducible, and not the file's first rows", async () => {
  const dir = tempDir();
  const run = (extra: string[], out: string) => {
    const r = runCli([
      "estimate",
      "--model",
      "test/fixtures/models/llama-gqa",
      "--data",
      `${E2E}/data.jsonl`,
      "--target",
      "q_proj",
      "--batch-size",
      "2",
      "--max-length",
      "10",
      "--batches",
      "1",
      "--kernels",
      "ref",
      "-q",
      ...extra,
      "--out",
      join(dir, out),
    ]);
    expect(r.status).toBe(0);
    return SafetensorsFile.open(join(dir, out));
  };
  const key = "model.layers.0.self_attn.q_proj";
  const first = await (await run([], "a.safetensors")).readF32(key);
  const s1 = await (await run(["--shuffle", "--seed", "1"], "b.safetensors")).readF32(key);
  const s1again = await (await run(["--shuffle", "--seed", "1"], "c.safetensors")).readF32(key);
  expect(s1again).toEqual(s1);
  expect(maxAbs(s1.map((v, i) => v - first[i]))).toBeGreaterThan(1e-6);
});

describe("bad input through the CLI", () => {
  const model = "test/fixtures/models/llama-gqa";
  const dir = tempDir();

  test("estimate: targets matching nothing list the model's linear modules", () => {
    const r = runCli([
      "estimate",
      "--model",
      model,
      "--data",
      `${E2E}/data.jsonl`,
      "--target",
      "nope",
      "--out",
      join(dir, "g.safetensors"),
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/loraga: error: target_modules \["nope"\] matched none/);
    expect(r.stderr).toMatch(/model\.layers\.0\.self_attn\.q_proj \(32 -> 32\)/);
  });

  test("estimate: a bad data row names file:line; a missing model dir is a usage error", () => {
    const data = join(dir, "bad.jsonl");
    writeFileSync(data, '{"input_ids": [1, 2]}\n{"input_ids": [1, 999]}\n');
    const r = runCli([
      "estimate",
      "--model",
      model,
      "--data",
      data,
      "--out",
      join(dir, "g.safetensors"),
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `${data}:2: "input_ids"[1] = 999 is outside the vocabulary (size 96)`,
    );
    const m = runCli([
      "estimate",
      "--model",
      dir,
      "--data",
      data,
      "--out",
      join(dir, "g.safetensors"),
    ]);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/--model .*: no config\.json there/);
  });

  test("init: r too large names the module; a gradient cache for another model names module and shapes", () => {
    const r = runCli([
      "init",
      "--model",
      model,
      "--grads",
      `${E2E}/llama-gqa/grads.safetensors`,
      "--target",
      "v_proj",
      "--r",
      "9",
      "--out",
      join(dir, "a"),
    ]);
    expect(r.status).toBe(2); // a usage error, found from the model's shapes before any init
    expect(r.stderr).toMatch(
      /--r: module model\.layers\.0\.self_attn\.v_proj \(in 32, out 16\): LoRA-GA needs 2r <= min\(out, in\) = 16, got r=9/,
    );
    const g = runCli([
      "init",
      "--model",
      "test/fixtures/models/gpt2",
      "--grads",
      `${E2E}/llama-gqa/grads.safetensors`,
      "--target",
      "c_attn",
      "--out",
      join(dir, "b"),
    ]);
    expect(g.status).toBe(1);
    expect(g.stderr).toMatch(
      /grads\.safetensors: gradient for module model\.layers\.0\.\S+ \[\d+, \d+\], which is not a targeted linear module/,
    );
  });

  test("convert: adapters of different ranks are refused; merge: a non-empty output dir is refused", () => {
    const a = join(dir, "ra");
    const b = join(dir, "rb");
    for (const [d, r] of [
      [a, "2"],
      [b, "1"],
    ] as const) {
      const res = runCli([
        "init",
        "--model",
        model,
        "--grads",
        `${E2E}/llama-gqa/grads.safetensors`,
        "--target",
        "q_proj",
        "--r",
        r,
        "--out",
        d,
        "-q",
      ]);
      expect(res.status).toBe(0);
    }
    const c = runCli(["convert", "--init", a, "--final", b, "--out", join(dir, "c")]);
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/--init and --final disagree: r 2 vs 1/);
    const busy = join(dir, "busy");
    mkdirSync(busy);
    writeFileSync(join(busy, "keep.txt"), "x");
    const m = runCli(["merge", "--model", model, "--adapter", a, "--out", busy]);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/busy is not empty; pass --overwrite to replace its contents/);
  });
});
