// Options as a user gives them (spawned `loraga`, real files): --config supplies any option with
// the flags' rules, train --method lora-ga takes the estimation flags (--max-grad-memory) through the
// shared estimate-then-init workflow, and bad values stop the command up front — exit 2, one
// `loraga: error:` line naming the flag or config key, and nothing created on disk.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";

const root = tempDir("loraga-options-");
const modelDir = join(root, "model");
const data = join(root, "train.jsonl");

beforeAll(() => {
  copyTinyModel(modelDir);
  const rows = [];
  for (let i = 0; i < 12; i++) {
    const a = (i * 7) % 10;
    const b = (i * 3) % 10;
    rows.push(JSON.stringify({ prompt: `Q: ${a} plus ${b}? A:`, completion: ` ${a + b}` }));
  }
  writeFileSync(data, `${rows.join("\n")}\n`);
});

/** Flags every training run here shares (tiny and fast). */
const TRAIN = [
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
  "--ga-batches",
  "2",
  "--steps",
  "3",
  "--kernels",
  "ref",
  "-q",
];

const trainLosses = (dir: string): number[] =>
  readFileSync(join(dir, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((x) => x.type === "train")
    .map((x) => x.loss);

async function tensors(file: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(file);
  const out = new Map<string, Float32Array>();
  for (const key of f.entries.keys()) out.set(key, await f.readF32(key));
  await f.close();
  return out;
}

/** A usage error: exit 2, one `loraga: error:` line matching `message`. */
function expectUsageError(r: { status: number | null; stderr: string }, message: RegExp): void {
  expect(r.stderr).toMatch(/^loraga: error: /);
  expect(r.stderr).toMatch(message);
  expect(r.status).toBe(2);
}

describe("train --method lora-ga takes the estimation flags", () => {
  test("--max-grad-memory (bounded estimation) trains exactly as without it, and as estimate + init + train", async () => {
    const plain = join(root, "plain");
    const bounded = join(root, "bounded");
    const a = runCli(["train", ...TRAIN, "--method", "lora-ga", "--out", plain]);
    expect(a.stderr).toBe("");
    expect(a.status).toBe(0);
    // 4 KiB holds one q_proj gradient (32 x 32 f32) at a time: the sums move off the heap layer by layer
    const b = runCli([
      "train",
      ...TRAIN,
      "--method",
      "lora-ga",
      "--max-grad-memory",
      "4K",
      "--out",
      bounded,
    ]);
    expect(b.stderr).toBe("");
    expect(b.status).toBe(0);
    expect(trainLosses(bounded)).toEqual(trainLosses(plain));
    const initA = await tensors(join(plain, "init-adapter", "adapter_model.safetensors"));
    const initB = await tensors(join(bounded, "init-adapter", "adapter_model.safetensors"));
    expect([...initB.keys()].sort()).toEqual([...initA.keys()].sort());
    for (const [key, value] of initA) expect(initB.get(key), key).toEqual(value);

    // the same steps by hand: estimate (same rows, batches, targets) -> init -> train --init-adapter
    const grads = join(root, "grads.safetensors");
    const shape = ["--target", "q_proj,v_proj", "--batch-size", "2", "--max-length", "32"];
    const e = runCli([
      "estimate",
      "--model",
      modelDir,
      "--data",
      data,
      ...shape,
      "--batches",
      "2",
      "--max-grad-memory",
      "4K",
      "--kernels",
      "ref",
      "-q",
      "--out",
      grads,
    ]);
    expect(e.status).toBe(0);
    const init = join(root, "by-hand-init");
    const i = runCli([
      "init",
      "--model",
      modelDir,
      "--grads",
      grads,
      "--target",
      "q_proj,v_proj",
      "--r",
      "2",
      "--kernels",
      "ref",
      "-q",
      "--out",
      init,
    ]);
    expect(i.status).toBe(0);
    const initC = await tensors(join(init, "adapter_model.safetensors"));
    for (const [key, value] of initA) expect(initC.get(key), key).toEqual(value);
    const byHand = join(root, "by-hand");
    const t = runCli(["train", ...TRAIN, "--init-adapter", init, "--out", byHand]);
    expect(t.stderr).toBe("");
    expect(t.status).toBe(0);
    expect(trainLosses(byHand)).toEqual(trainLosses(plain));
  });

  test("--max-grad-memory smaller than one target's gradient names the flag, before estimating", () => {
    const out = join(root, "tiny-budget");
    const r = runCli([
      "train",
      ...TRAIN,
      "--method",
      "lora-ga",
      "--max-grad-memory",
      "1K",
      "--out",
      out,
    ]);
    expectUsageError(
      r,
      /--max-grad-memory 1\.00 KiB is smaller than the gradient of model\.layers\.0\.self_attn\.q_proj/,
    );
    expect(existsSync(out)).toBe(false);
  });
});

describe("--config: the flags' schema", () => {
  test("supplies the required options (model, data, out); flags win over it", () => {
    const out = join(root, "from-config");
    const config = join(root, "run.yaml");
    writeFileSync(
      config,
      `model: ${modelDir}\ndata: ${data}\nout: ${out}\nmethod: lora\nr: 2\nbatch-size: 2\n` +
        `max-length: 32\nsteps: 5\nkernels: ref\nquiet: true\ntarget: [q_proj, v_proj]\n`,
    );
    const r = runCli(["train", "--config", config, "--steps", "2"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(summary).toMatchObject({ method: "lora", r: 2, steps: 2 });
  });

  test.each([
    ["method: foo", /--config \S+: method must be one of lora-ga, lora, .*full, got "foo"/],
    ["steps: 0", /--config \S+: steps must be an integer >= 1, got "0"/],
    ["steps: two", /--config \S+: steps must be an integer >= 1, got "two"/],
    ["lr: -1", /--config \S+: lr must be a number >= 0, got "-1"/],
    ["quiet: yes", /--config \S+: quiet must be true or false, got "yes"/],
    ["bogus: 1", /--config \S+: unknown option "bogus" \(options: model, data, out, /],
  ])("%s is refused up front, naming the key", (line, message) => {
    const out = join(root, `bad-config-${line.replace(/\W/g, "")}`);
    const config = join(root, `bad-${line.replace(/\W/g, "")}.yaml`);
    writeFileSync(config, `model: ${modelDir}\ndata: ${data}\nout: ${out}\n${line}\n`);
    expectUsageError(runCli(["train", "--config", config]), message);
    expect(existsSync(out)).toBe(false);
  });

  test("a required option given nowhere names it", () => {
    const r = runCli(["train", "--data", data, "--out", join(root, "no-model")]);
    expectUsageError(r, /required option --model <dir> not specified/);
  });
});

describe("bad values stop train before anything runs or is written", () => {
  test("--r 65 with lora-ga: LoRA-GA's rank limit from the model's shapes, before estimation", () => {
    const out = join(root, "r65");
    // not quiet: the estimation progress would show on stderr had it started
    const r = runCli(["train", ...TRAIN.filter((x) => x !== "-q"), "--r", "65", "--out", out]);
    expectUsageError(
      r,
      /--r: module model\.layers\.0\.self_attn\.q_proj .*LoRA-GA needs 2r <= min\(out, in\) = 32, got r=65/,
    );
    expect(r.stderr).not.toMatch(/estimat/);
    expect(existsSync(out)).toBe(false);
  });

  test("--lr -1", () => {
    const out = join(root, "lr");
    expectUsageError(
      runCli(["train", ...TRAIN, "--lr", "-1", "--out", out]),
      /--lr must be a number >= 0, got "-1"/,
    );
    expect(existsSync(out)).toBe(false);
  });

  test("--eval-split that leaves too few rows for a batch, or every row", () => {
    const out = join(root, "split");
    expectUsageError(
      runCli(["train", ...TRAIN, "--eval-split", "11", "--out", out]),
      /1 training rows after --eval-split 11 cannot fill one batch of --batch-size 2/,
    );
    expectUsageError(
      runCli(["train", ...TRAIN, "--eval-split", "12", "--out", out]),
      /--eval-split 12 must be below the 12 rows of /,
    );
    expect(existsSync(out)).toBe(false);
  });

  test("--early-stopping without evaluation", () => {
    const out = join(root, "early");
    expectUsageError(
      runCli(["train", ...TRAIN, "--early-stopping", "2", "--out", out]),
      /--early-stopping needs --eval-every and held-out data/,
    );
    expect(existsSync(out)).toBe(false);
  });
});

describe("estimate: the output is checked before estimating", () => {
  const args = ["estimate", "--model", modelDir, "--data", data, "--kernels", "ref"];
  test("a nonexistent parent directory, a directory, a file as the parent", () => {
    expectUsageError(
      runCli([...args, "--out", join(root, "missing", "grads.safetensors")]),
      /--out \S+: directory \S+missing does not exist/,
    );
    expectUsageError(runCli([...args, "--out", root]), /--out \S+: is a directory/);
    expectUsageError(
      runCli([...args, "--out", join(data, "grads.safetensors")]),
      /--out \S+: \S+train\.jsonl is not a directory/,
    );
  });
});

describe("commander's own errors carry the prefix", () => {
  test("an unknown flag, a missing value, an unknown command", () => {
    expectUsageError(runCli(["train", "--bogus"]), /^loraga: error: unknown option '--bogus'/);
    expectUsageError(
      runCli(["train", "--steps"]),
      /^loraga: error: option '--steps <n>' argument missing/,
    );
    expectUsageError(runCli(["bogus"]), /^loraga: error: unknown command 'bogus'/);
  });
});
