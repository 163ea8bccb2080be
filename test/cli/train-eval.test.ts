// `loraga train / eval / generate / compare` as a user runs them: spawned processes, real files, a
// tiny Llama checkpoint with a character-level tokenizer (scripts/fixtures/make_tiny_tokenizer.py);
// `train --method lora-ga` on the tiny qwen3, smollm3 and phi3 too.
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { collate } from "../../src/data/batches.js";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels } from "../../src/kernels/kernels.js";
import { loadModel } from "../../src/models/model.js";
import { loadAdapter } from "../../src/peft/adapter-io.js";
import { loadPeftModel } from "../../src/peft/peft-model.js";
import { Heap } from "../../src/tensor/heap.js";
import { expectAllclose } from "../helpers/allclose.js";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";

const root = tempDir("loraga-train-");
const modelDir = join(root, "model");
const data = join(root, "train.jsonl");
let kernels: Kernels;

beforeAll(async () => {
  copyTinyModel(modelDir);
  const rows = [];
  for (let i = 0; i < 12; i++) {
    const a = (i * 7) % 10;
    const b = (i * 3) % 10;
    rows.push(
      JSON.stringify({
        prompt: `Q: ${a} plus ${b}? A:`,
        completion: ` ${a} + ${b} = ${a + b}. #### ${a + b}`,
      }),
    );
  }
  writeFileSync(data, `${rows.join("\n")}\n`);
  kernels = await createKernels("ref", { heap: new Heap() });
});
afterAll(async () => {
  await kernels.dispose();
});

const common = [
  "--model",
  modelDir,
  "--data",
  data,
  "--r",
  "2",
  "--target",
  "q_proj,v_proj",
  "--batch-size",
  "2",
  "--max-length",
  "32",
  "--lr",
  "0.005",
  "--kernels",
  "ref",
  "-q",
];

function trainLog(dir: string): Array<Record<string, number | string>> {
  return readFileSync(join(dir, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

/** Adapted module names under target all-linear (PEFT's rule: every linear layer but lm_head). */
const ALL_LINEAR: Record<string, string[]> = {
  qwen3: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  smollm3: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  phi3: ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
};

describe.each(Object.keys(ALL_LINEAR))("loraga train --method lora-ga on %s", (fixture) => {
  test("all-linear LoRA-GA run; the converted adapter gives the trained model on the original base", async () => {
    const model = join(root, `${fixture}-model`);
    const run = join(root, `${fixture}-run`);
    copyTinyModel(model, fixture);
    const args = ["--model", model, ...common.slice(2)];
    args[args.indexOf("q_proj,v_proj")] = "all-linear";
    const r = runCli([
      "train",
      ...args,
      "--method",
      "lora-ga",
      "--ga-batches",
      "2",
      "--steps",
      "3",
      "--out",
      run,
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(trainLog(run).filter((x) => x.type === "train").length).toBe(3);
    const base = await loadModel(model, { kernels });
    const adapted = [
      ...(await loadAdapter(join(run, "adapter-converted"), base.linears())).weights,
    ];
    expect(adapted.map(([path]) => path.split(".").at(-1)).sort()).toEqual(
      [...ALL_LINEAR[fixture], ...ALL_LINEAR[fixture]].sort(), // 2 layers
    );
    for (const [path, w] of adapted) {
      const info = base.linears().find((l) => l.path === path);
      expect([w.A.length, w.B.length], path).toEqual([
        4 * (info?.inFeatures ?? 0), // converted adapter: rank 2r
        4 * (info?.outFeatures ?? 0),
      ]);
    }
    const batch = collate([{ inputIds: [1, 50, 20, 30, 40, 60, 70], labels: [], source: "" }], {
      maxLength: 16,
      padTokenId: 0,
    });
    const onOffset = await loadModel(model, { kernels });
    await loadPeftModel(onOffset, join(run, "adapter"), {
      initAdapterDir: join(run, "init-adapter"),
    });
    const trained = onOffset.forward(batch).toArray();
    const onOriginal = await loadModel(model, { kernels });
    await loadPeftModel(onOriginal, join(run, "adapter-converted"));
    const converted = onOriginal.forward(batch).toArray();
    const before = base.forward(batch).toArray();
    const scale = Math.max(...before.map(Math.abs));
    expectAllclose(converted, trained, { rtol: 1e-5, atol: 1e-5 * scale, label: "converted" });
    expect(Math.max(...trained.map((v, i) => Math.abs(v - before[i])))).toBeGreaterThan(1e-4);
    for (const m of [base, onOffset, onOriginal]) m.dispose();
  });
});

describe("loraga train", () => {
  const run = join(root, "lora-ga");

  test("LoRA-GA run: log, summary, adapters; the converted adapter gives the trained model on the original base", async () => {
    const r = runCli([
      "train",
      ...common,
      "--method",
      "lora-ga",
      "--ga-batches",
      "2",
      "--steps",
      "4",
      "--eval-split",
      "4",
      "--eval-every",
      "2",
      "--checkpoint-every",
      "2",
      "--name",
      "lora-ga",
      "--out",
      run,
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    for (const f of [
      "init-adapter",
      "adapter",
      "adapter-converted",
      "run.json",
      "train.jsonl",
      "checkpoints/checkpoint-2",
      "checkpoints/checkpoint-4",
    ]) {
      expect(existsSync(join(run, f)), f).toBe(true);
    }
    const log = trainLog(run);
    expect(log.filter((x) => x.type === "train").map((x) => x.step)).toEqual([1, 2, 3, 4]);
    expect(log.filter((x) => x.type === "eval").map((x) => x.step)).toEqual([2, 4]);
    const summary = JSON.parse(readFileSync(join(run, "run.json"), "utf8"));
    expect(summary).toMatchObject({ name: "lora-ga", method: "lora-ga", steps: 4, r: 2 });
    expect(summary.estimate_seconds).toBeGreaterThan(0);

    const batch = collate([{ inputIds: [1, 50, 20, 30, 40, 60, 70], labels: [], source: "" }], {
      maxLength: 16,
      padTokenId: 0,
    });
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
  });

  test("--resume after losing the last checkpoint repeats the same losses exactly", () => {
    const copy = join(root, "lora-ga-resumed");
    cpSync(run, copy, { recursive: true });
    for (const f of ["checkpoints/checkpoint-4", "run.json", "adapter", "adapter-converted"])
      rmSync(join(copy, f), { recursive: true });
    const r = runCli([
      "train",
      ...common,
      "--method",
      "lora-ga",
      "--ga-batches",
      "2",
      "--steps",
      "4",
      "--eval-split",
      "4",
      "--eval-every",
      "2",
      "--checkpoint-every",
      "2",
      "--resume",
      "--out",
      copy,
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const original = trainLog(run).filter((x) => x.type === "train");
    const resumed = trainLog(copy).filter((x) => x.type === "train");
    // the log is cut back to the checkpoint's step on resume: each step once
    expect(resumed.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    expect(resumed.slice(2).map((x) => x.loss)).toEqual(original.slice(2).map((x) => x.loss));
  });

  test("plain LoRA and full fine-tuning runs; compare makes the report", () => {
    const lora = join(root, "lora");
    expect(
      runCli([
        "train",
        ...common,
        "--method",
        "lora",
        "--steps",
        "3",
        "--name",
        "lora",
        "--out",
        lora,
      ]).status,
    ).toBe(0);
    const full = join(root, "full");
    const f = runCli([
      "train",
      ...common,
      "--method",
      "full",
      "--steps",
      "2",
      "--lr",
      "0.001",
      "--out",
      full,
    ]);
    expect(f.stderr).toBe("");
    expect(f.status).toBe(0);
    expect(existsSync(join(full, "model", "model.safetensors"))).toBe(true);
    expect(existsSync(join(full, "model", "tokenizer.json"))).toBe(true);
    const report = join(root, "report.html");
    const c = runCli(["compare", run, lora, full, "--out", report, "-q"]);
    expect(c.status).toBe(0);
    const html = readFileSync(report, "utf8");
    for (const name of ["lora-ga", "lora", "full"]) expect(html).toContain(name);
  });

  test("bad input: --resume without checkpoints, bad --betas, a bad data row, a finished run dir", () => {
    const fresh = join(root, "nothing");
    const a = runCli([
      "train",
      ...common,
      "--method",
      "lora",
      "--steps",
      "1",
      "--resume",
      "--out",
      fresh,
    ]);
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/--resume: .*nothing holds no run to resume/);
    const b = runCli([
      "train",
      ...common,
      "--method",
      "lora",
      "--steps",
      "1",
      "--betas",
      "0.9",
      "--out",
      fresh,
    ]);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/--betas must be two numbers/);
    const bad = join(root, "bad.jsonl");
    writeFileSync(bad, '{"text": "ok"}\n{"prompt": 5, "completion": "x"}\n');
    const c = runCli([
      "train",
      ...common.map((x) => (x === data ? bad : x)),
      "--method",
      "lora",
      "--steps",
      "1",
      "--out",
      fresh,
    ]);
    expect(c.status).toBe(1);
    expect(c.stderr).toContain(`${bad}:2: "prompt" must be a string, got a number`);
    const d = runCli(["train", ...common, "--method", "lora", "--steps", "1", "--out", run]);
    expect(d.status).toBe(2);
    expect(d.stderr).toMatch(/holds a finished run; choose a new directory/);
  });
});

describe("loraga eval and generate", () => {
  test("eval prints loss, perplexity and exact match as JSON", () => {
    const r = runCli([
      "eval",
      "--model",
      modelDir,
      "--adapter",
      join(root, "lora-ga", "adapter-converted"),
      "--data",
      data,
      "--exact-match",
      "--max-new-tokens",
      "4",
      "--kernels",
      "ref",
    ]);
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.examples).toBe(12);
    expect(result.perplexity).toBeCloseTo(Math.exp(result.loss), 6);
    expect(result.exact_match).toBeGreaterThanOrEqual(0);
    expect(result.exact_match).toBeLessThanOrEqual(1);
  });

  test("greedy generation is deterministic and continues the prompt; sampling is seeded", () => {
    const args = [
      "generate",
      "--model",
      modelDir,
      "--prompt",
      "Q: 1 plus 2? A:",
      "--max-new-tokens",
      "6",
      "--kernels",
      "ref",
    ];
    const a = runCli(args);
    expect(a.status).toBe(0);
    expect(a.stdout.startsWith("Q: 1 plus 2? A:")).toBe(true);
    expect(runCli(args).stdout).toBe(a.stdout);
    const s = [...args, "--temperature", "1.5", "--seed", "3", "--format", "jsonl"];
    const s1 = runCli(s);
    expect(s1.status).toBe(0);
    expect(JSON.parse(s1.stdout).prompt).toBe("Q: 1 plus 2? A:");
    expect(runCli(s).stdout).toBe(s1.stdout);
  });

  test("bad input: no prompt; --init without --adapter", () => {
    const a = runCli(["generate", "--model", modelDir]);
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/give --prompt TEXT or --data FILE/);
    const b = runCli(["eval", "--model", modelDir, "--data", data, "--init", "x"]);
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/--init needs --adapter/);
  });
});
