// Exact resume after a hard kill: a child process trains (resume-child.ts, compiled here with tsc)
// and is SIGKILLed mid-run; training resumed in this process from the newest checkpoint must give
// bit-identical per-step losses to an uninterrupted run (same ref kernels, same JS engine).
// Also: every checkpoint directory left behind is complete (atomic writes), and a resume with
// changed options is refused.

import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { listCheckpoints, loadCheckpoint } from "../../src/train/checkpoint.js";
import { compileChild, ROOT } from "../helpers/compile-child.js";
import { RESUME_STEPS, runResumable } from "./resume-setup.js";
import { MODEL_DIR, refKernels, tinyModel } from "./train-helpers.js";

function trainLosses(logFile: string): Map<number, number> {
  const out = new Map<number, number>();
  if (!existsSync(logFile)) return out;
  for (const line of readFileSync(logFile, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    let rec: { type: string; step: number; loss: number };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue; // a line cut by the kill
    }
    if (rec.type === "train") out.set(rec.step, rec.loss);
  }
  return out;
}

describe("checkpoint and exact resume", () => {
  let kernels: Kernels;
  let dir: string;
  beforeAll(async () => {
    kernels = await refKernels();
    dir = await mkdtemp(join(tmpdir(), "loraga-resume-"));
  });
  afterAll(async () => {
    await kernels.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test("SIGKILL mid-run, resume: same per-step losses as an uninterrupted run", async () => {
    const straight = await runResumable(kernels, { checkpointDir: join(dir, "straight") });
    expect(straight.losses.length).toBe(RESUME_STEPS);

    const childJs = compileChild(join(import.meta.dirname, "resume-child.ts"), join(dir, "build"));
    await writeFile(join(dir, "build", "package.json"), '{"type": "module"}\n');
    const ckptDir = join(dir, "killed");
    const logFile = join(dir, "killed.jsonl");
    const child = spawn(process.execPath, [childJs, ckptDir, logFile], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, LORAGA_TEST_FIXTURES: join(ROOT, "test", "fixtures") },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    let finished: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    void exited.then((r) => {
      finished = r;
    });
    // kill once 5 steps are logged (a checkpoint at step 4 exists; the child may be writing step 6's)
    const deadline = Date.now() + 60_000;
    while (finished === null && trainLosses(logFile).size < 5 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(finished, `child exited before the kill: ${stderr}`).toBeNull();
    child.kill("SIGKILL");
    const { signal } = await exited;
    expect(signal).toBe("SIGKILL");
    const before = trainLosses(logFile);
    expect(before.size).toBeLessThan(RESUME_STEPS);

    // every checkpoint left behind is complete and loadable
    const model = await tinyModel(kernels);
    const ckpts = await listCheckpoints(ckptDir);
    expect(ckpts.length).toBeGreaterThan(0);
    for (const c of ckpts)
      expect((await loadCheckpoint(c.path, model.linears())).step).toBe(c.step);
    model.dispose();
    const resumeFrom = ckpts[ckpts.length - 1].step;
    const names = await readdir(ckptDir);
    expect(names.filter((n) => /^checkpoint-\d+$/.test(n)).length).toBe(ckpts.length);

    const resumed = await runResumable(kernels, { checkpointDir: ckptDir, resume: true });
    expect(resumed.resumedFrom).toBe(resumeFrom);
    expect(resumed.losses.length).toBe(RESUME_STEPS - resumeFrom);
    for (let s = 1; s <= resumeFrom; s++)
      expect(before.get(s), `step ${s} before the kill`).toBe(straight.losses[s - 1]);
    expect(resumed.losses).toEqual(straight.losses.slice(resumeFrom));
    expect(new Set(straight.losses).size).toBe(RESUME_STEPS); // the losses really change step to step
  });

  test("resume refuses changed options", async () => {
    const ckptDir = join(dir, "straight");
    const { train } = await import("../../src/train/trainer.js");
    const { getPeftModel } = await import("../../src/peft/peft-model.js");
    const { FixedBatches } = await import("../../src/train/data-order.js");
    const { readBatches, initialAdapter } = await import("./train-helpers.js");
    const model = await tinyModel(kernels);
    const adapter = await initialAdapter(model);
    const trainable = getPeftModel(model, adapter.config.with({ lora_dropout: 0.1 }), {
      weights: adapter.weights,
      seed: 11,
    });
    await expect(
      train(trainable, new FixedBatches(readBatches().train), {
        steps: 10,
        lr: 2e-3,
        checkpointDir: ckptDir,
        resume: true,
      }),
    ).rejects.toThrow(/option lr/);
    trainable.dispose();
    model.dispose();
    expect(MODEL_DIR).toBeTruthy();
  });
});
