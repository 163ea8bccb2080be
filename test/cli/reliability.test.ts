// Issue 13, "nothing lost, nothing silent", as a user meets it: spawned `loraga` processes on real
// files. One describe per numbered case of the issue: 1 outputs are never silently replaced,
// 2 one process per run directory, 3 resume and rerun, 4 no silent no-learning, 7 interrupts,
// 8 strict UTF-8, 9 no hang on odd --out paths, 10 merged checkpoints and run.json describe
// themselves.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { saveGradients } from "../../src/peft/gradient-cache.js";
import { copyTinyModel, runCli, tempDir } from "../helpers/cli.js";

const root = tempDir("loraga-reliability-");
const modelDir = join(root, "model");
const data = join(root, "train.jsonl");

beforeAll(() => {
  copyTinyModel(modelDir);
  const rows = [];
  for (let i = 0; i < 8; i++) {
    const [a, b] = [(i * 7) % 10, (i * 3) % 10];
    rows.push(JSON.stringify({ prompt: `Q: ${a} plus ${b}? A:`, completion: ` ${a + b}.` }));
  }
  writeFileSync(data, `${rows.join("\n")}\n`);
});

/** The flags of `estimate`; `lora` adds the rank for init and train. */
const est = [
  "--model",
  modelDir,
  "--target",
  "q_proj,v_proj",
  "--batch-size",
  "2",
  "--max-length",
  "32",
  "--kernels",
  "ref",
  "-q",
];
const lora = [...est, "--r", "2"];
const trainArgs = (out: string, ...more: string[]) => [
  "train",
  ...lora,
  "--data",
  data,
  "--method",
  "lora",
  "--out",
  out,
  ...more,
];

function logSteps(dir: string): number[] {
  return readFileSync(join(dir, "train.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === "train")
    .map((r) => r.step);
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<{ status: number | null; signal: NodeJS.Signals | null }>;
}

/** Children still running when a test ends (it failed) are killed, so none outlives the suite. */
const started: ChildProcess[] = [];
afterEach(() => {
  for (const child of started.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** Starts `loraga args` without waiting for it. */
function startCli(args: string[]): Running {
  const child = spawn(process.execPath, ["dist/cli/main.js", ...args], {
    env: { ...process.env, LORAGA_DEBUG: "" },
  });
  started.push(child);
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  const exit = new Promise<{ status: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (status, signal) => resolve({ status, signal })),
  );
  return { child, stderr: () => stderr, exit };
}

/** Polls `ready` every 20 ms; fails after `ms`. */
async function waitFor(ready: () => boolean, what: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!ready()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const logLines = (dir: string) =>
  existsSync(join(dir, "train.jsonl"))
    ? readFileSync(join(dir, "train.jsonl"), "utf8").split("\n").filter(Boolean).length
    : 0;

describe("1. existing outputs are never silently replaced", () => {
  test("init over an existing adapter is refused (--overwrite replaces it)", () => {
    const out = join(root, "adapter-1");
    expect(runCli(["init", ...lora, "--method", "lora", "--out", out]).status).toBe(0);
    const before = readFileSync(join(out, "adapter_model.safetensors"));
    const again = runCli(["init", ...lora, "--method", "lora", "--seed", "7", "--out", out]);
    expect(again.status).toBe(2);
    expect(again.stderr).toBe(
      `loraga: error: --out ${out} is not empty; pass --overwrite to replace its contents\n`,
    );
    expect(readFileSync(join(out, "adapter_model.safetensors")).equals(before)).toBe(true);
    const forced = runCli([
      "init",
      ...lora,
      "--method",
      "lora",
      "--seed",
      "7",
      "--overwrite",
      "--out",
      out,
    ]);
    expect(forced.status).toBe(0);
    expect(readFileSync(join(out, "adapter_model.safetensors")).equals(before)).toBe(false);
  });

  test("estimate never writes over its own --data, even with --overwrite or through a symlink", () => {
    const copy = join(root, "data-1.jsonl");
    copyFileSync(data, copy);
    const link = join(root, "data-1-link.jsonl");
    symlinkSync(copy, link);
    const before = readFileSync(copy, "utf8");
    for (const [out, extra] of [
      [copy, []],
      [copy, ["--overwrite"]],
      [link, ["--overwrite"]],
    ] as const) {
      const r = runCli([
        "estimate",
        ...est,
        "--data",
        copy,
        "--batches",
        "1",
        "--out",
        out,
        ...extra,
      ]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`--out ${out} is the same path as --data ${copy}`);
    }
    expect(readFileSync(copy, "utf8")).toBe(before);
  });

  test("estimate, convert and compare refuse an existing output and name --overwrite", () => {
    const file = join(root, "exists-1.bin");
    writeFileSync(file, "keep");
    const e = runCli(["estimate", ...est, "--data", data, "--batches", "1", "--out", file]);
    expect(e.status).toBe(2);
    expect(e.stderr).toContain(`--out ${file} already exists; pass --overwrite to replace it`);
    const dir = join(root, "exists-dir-1");
    mkdirSync(dir);
    writeFileSync(join(dir, "keep.txt"), "keep");
    const a = join(root, "adapter-1");
    const c = runCli(["convert", "--init", a, "--final", a, "--out", dir]);
    expect(c.status).toBe(2);
    expect(c.stderr).toContain(`--out ${dir} is not empty; pass --overwrite`);
    const runDir = join(root, "cmp-run-1");
    mkdirSync(runDir);
    writeFileSync(join(runDir, "train.jsonl"), '{"type":"train","step":1,"loss":1}\n');
    const k = runCli(["compare", runDir, "--out", file]);
    expect(k.status).toBe(2);
    expect(k.stderr).toContain(`--out ${file} already exists; pass --overwrite`);
    expect(readFileSync(file, "utf8")).toBe("keep");
    expect(readFileSync(join(dir, "keep.txt"), "utf8")).toBe("keep");
  });
});

describe("2. a run directory belongs to one process", () => {
  test("a second train on the same --out fails at once; SIGTERM then saves and exits 143", async () => {
    const out = join(root, "run-2");
    const first = startCli(trainArgs(out, "--steps", "100000"));
    await waitFor(() => logLines(out) >= 1, "the first run's first step");
    const t0 = Date.now();
    for (const extra of [[], ["--resume"]]) {
      const second = runCli(trainArgs(out, "--steps", "100000", ...extra));
      expect(second.status).toBe(1);
      expect(second.stderr).toContain(`${out} is in use by process ${first.child.pid} on `);
    }
    expect(Date.now() - t0).toBeLessThan(20_000);
    first.child.kill("SIGTERM");
    const { status } = await first.exit;
    expect(first.stderr()).toContain("interrupted at step");
    expect(status).toBe(143);
    const steps = logSteps(out);
    expect(new Set(steps).size).toBe(steps.length);
    expect(existsSync(join(out, ".loraga.lock"))).toBe(false);
  });
});

describe("3. rerun and resume", () => {
  test("--resume on a finished run says so, exits non-zero and rewrites nothing", () => {
    const out = join(root, "run-3-finished");
    expect(runCli(trainArgs(out, "--steps", "2")).status).toBe(0);
    const summary = readFileSync(join(out, "run.json"), "utf8");
    const mtime = statSync(join(out, "run.json")).mtimeMs;
    const r = runCli(trainArgs(out, "--steps", "2", "--resume"));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--resume: the run in ${out} is finished`);
    expect(readFileSync(join(out, "run.json"), "utf8")).toBe(summary);
    expect(statSync(join(out, "run.json")).mtimeMs).toBe(mtime);
  });

  test("after a kill past the last checkpoint: a rerun without --resume is refused; --resume logs each step once and keeps run.json's fields", () => {
    const original = join(root, "run-3-original");
    const args = (out: string, ...more: string[]) => [
      "train",
      ...lora,
      "--data",
      data,
      "--method",
      "lora-ga",
      "--ga-batches",
      "2",
      "--steps",
      "4",
      "--checkpoint-every",
      "2",
      "--out",
      out,
      ...more,
    ];
    expect(runCli(args(original)).status).toBe(0);
    // what a kill after step 4's log line and before its checkpoint leaves
    const killed = join(root, "run-3-killed");
    cpSync(original, killed, { recursive: true });
    for (const f of ["checkpoints/checkpoint-4", "run.json", "adapter", "adapter-converted"])
      rmSync(join(killed, f), { recursive: true });
    const rerun = runCli(args(killed));
    expect(rerun.status).toBe(2);
    expect(rerun.stderr).toContain(
      `--out ${killed} holds an unfinished run (last checkpoint at step 2); pass --resume to continue it`,
    );
    expect(logSteps(killed)).toEqual([1, 2, 3, 4]);

    const resumed = runCli(args(killed, "--resume"));
    expect(resumed.stderr).toBe("");
    expect(resumed.status).toBe(0);
    expect(logSteps(killed)).toEqual([1, 2, 3, 4]);
    const a = JSON.parse(readFileSync(join(original, "run.json"), "utf8"));
    const b = JSON.parse(readFileSync(join(killed, "run.json"), "utf8"));
    expect(a.init_seconds).toBeGreaterThan(0);
    for (const key of ["init_seconds", "estimate_seconds", "svd_seconds", "final_train_loss", "r"])
      expect(b[key], key).toBe(a[key]);
  });
});

describe("4. no silent no-learning", () => {
  test("a dataset whose labels are all masked is an error naming the file", () => {
    const masked = join(root, "masked-4.jsonl");
    const row = { input_ids: [5, 6, 7, 8], labels: [-100, -100, -100, -100] };
    writeFileSync(masked, `${[row, row, row].map((r) => JSON.stringify(r)).join("\n")}\n`);
    const out = join(root, "run-4-masked");
    const r = runCli([
      "train",
      ...lora,
      "--data",
      masked,
      "--method",
      "lora",
      "--steps",
      "2",
      "--out",
      out,
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${masked}: none of its 3 rows has a learned token`);
    expect(existsSync(join(out, "run.json"))).toBe(false);
  });

  test("rows whose prompt fills --max-length are dropped with a warning counting them", () => {
    const long = join(root, "long-prompt-4.jsonl");
    const rows = [
      { prompt: "Q: 1 plus 2? A:", completion: " 3." },
      { prompt: "Q: 1 plus 2 plus 3 plus 4 plus 5? A:", completion: " 15." },
      { prompt: "Q: 2 plus 2? A:", completion: " 4." },
      { prompt: "Q: 9 plus 9 plus 9 plus 9 plus 9? A:", completion: " 45." },
    ];
    writeFileSync(long, `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`);
    const out = join(root, "run-4-long");
    const r = runCli([
      "train",
      ...lora.map((x) => (x === "32" ? "20" : x)),
      "--data",
      long,
      "--method",
      "lora",
      "--steps",
      "2",
      "--out",
      out,
    ]);
    expect(r.stderr).toContain(
      `warning: dropped 2 of 4 rows of ${long} with no learned token within the first 20 tokens`,
    );
    expect(r.stderr).toContain(`first: ${long}:2`);
    expect(r.status).toBe(0);
  });

  test("LoRA-GA from an all-zero gradient is an error naming the module", async () => {
    const grads = join(root, "grads-4.safetensors");
    const estimated = runCli([
      "estimate",
      ...est,
      "--data",
      data,
      "--batches",
      "1",
      "--out",
      grads,
    ]);
    expect(estimated.status).toBe(0);
    const file = await SafetensorsFile.open(grads);
    const entries = new Map();
    for (const [name, e] of file.entries) {
      const values = await file.readF32(name);
      if (name === "model.layers.1.self_attn.v_proj") values.fill(0);
      entries.set(name, { shape: [e.shape[0], e.shape[1]], data: values });
    }
    await file.close();
    const zeroed = join(root, "grads-4-zero.safetensors");
    await saveGradients(zeroed, entries);
    const r = runCli(["init", ...lora, "--grads", zeroed, "--out", join(root, "init-4")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("gradient of module model.layers.1.self_attn.v_proj is all zeros");
  });
});

describe("7. interrupts", () => {
  test("SIGINT: checkpoint and adapter saved, where and how to resume printed, exit 130; the resumed run continues the log", async () => {
    const out = join(root, "run-7");
    const run = startCli(trainArgs(out, "--steps", "100000"));
    await waitFor(() => logLines(out) >= 2, "two steps");
    const t0 = Date.now();
    run.child.kill("SIGINT");
    const { status } = await run.exit;
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(status).toBe(130);
    const steps = logSteps(out);
    const k = steps.at(-1) as number;
    const ckpt = join(out, "checkpoints", `checkpoint-${k}`);
    expect(run.stderr()).toContain(
      `loraga: interrupted at step ${k} of 100000: checkpoint ${ckpt}, adapter so far in ${join(out, "adapter")}`,
    );
    expect(run.stderr()).toMatch(/to continue: loraga train .* --resume\n$/);
    expect(existsSync(join(ckpt, "trainer_state.json"))).toBe(true);
    expect(existsSync(join(out, "adapter", "adapter_model.safetensors"))).toBe(true);
    expect(existsSync(join(out, "run.json"))).toBe(false);
    expect(existsSync(join(out, ".loraga.lock"))).toBe(false);

    const rerun = runCli(trainArgs(out, "--steps", "100000"));
    expect(rerun.status).toBe(2);
    expect(rerun.stderr).toContain(`(last checkpoint at step ${k}); pass --resume`);

    const resumed = startCli(trainArgs(out, "--steps", "100000", "--resume"));
    await waitFor(() => logLines(out) >= k + 2, "two more steps");
    resumed.child.kill("SIGINT");
    expect((await resumed.exit).status).toBe(130);
    const all = logSteps(out);
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    // the second checkpoint still carries the first process's init timings (for run.json)
    const notes = (step: number) =>
      JSON.parse(
        readFileSync(join(out, "checkpoints", `checkpoint-${step}`, "trainer_state.json"), "utf8"),
      ).notes;
    expect(notes(k).init_seconds).toBeGreaterThan(0);
    expect(notes(all.at(-1) as number)).toEqual(notes(k));
  });

  test("a second signal exits at once, restoring the terminal first", () => {
    const script = `
      import { watchInterrupts } from "./dist/cli/interrupt.js";
      const w = watchInterrupts({ onHardExit: () => process.stdout.write("bar stopped\\n") });
      w.graceful = true;
      process.kill(process.pid, "SIGINT");
      setTimeout(() => {
        process.stdout.write("first: " + w.received + "\\n");
        process.kill(process.pid, "SIGINT");
        setTimeout(() => process.stdout.write("still running\\n"), 2000);
      }, 200);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    expect(r.status).toBe(130);
    expect(r.stdout).toBe("first: SIGINT\nbar stopped\n");
    expect(r.stderr).toContain("SIGINT received; stopping");
    expect(r.stderr).toContain("loraga: SIGINT: stopped at once");
  });

  // util-linux's script(1) gives the CLI a pseudo-terminal (Debian's essential bsdutils package)
  test("Ctrl-C in a terminal: the progress bar's line-wrap-off is undone (ESC[?7h)", async () => {
    const out = join(root, "run-7-tty");
    const cmd = [process.execPath, "dist/cli/main.js", ...trainArgs(out, "--steps", "100000")]
      .filter((a) => a !== "-q")
      .map((a) => `'${a}'`)
      .join(" ");
    const child = spawn("script", ["-qfec", cmd, "/dev/null"]);
    started.push(child);
    let tty = "";
    child.stdout.on("data", (d) => {
      tty += String(d);
    });
    const exit = new Promise<number | null>((resolve) => child.on("exit", resolve));
    await waitFor(() => logLines(out) >= 2 && tty.includes("\x1b[?7l"), "the progress bar");
    child.stdin.write("\x03");
    expect(await exit).toBe(130);
    expect(tty.lastIndexOf("\x1b[?7h")).toBeGreaterThan(tty.lastIndexOf("\x1b[?7l"));
    expect(tty).toContain("interrupted at step");
  });
});

describe("8. strict UTF-8", () => {
  test("invalid UTF-8 in a JSONL row is an error naming file:line", () => {
    const bad = join(root, "bad-utf8-8.jsonl");
    writeFileSync(
      bad,
      Buffer.concat([
        Buffer.from('{"text":"Q: 1 plus 1? A: 2."}\n{"text":"appl'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('s"}\n'),
      ]),
    );
    const r = runCli(
      trainArgs(join(root, "run-8"), "--steps", "1").map((x) => (x === data ? bad : x)),
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${bad}:2: invalid UTF-8 (byte 0xFF at column 14)`);
  });

  test("invalid UTF-8 in a --config file is an error naming file:line", () => {
    const cfg = join(root, "bad-utf8-8.yaml");
    writeFileSync(
      cfg,
      Buffer.concat([Buffer.from("steps: 2\nname: r"), Buffer.from([0xe9]), Buffer.from("sum\n")]),
    );
    const r = runCli([...trainArgs(join(root, "run-8-cfg")), "--config", cfg]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--config ${cfg}:2: invalid UTF-8 (byte 0xE9 at column 8)`);
  });
});

describe("9. odd --out paths fail at once", () => {
  test.skipIf(process.platform !== "linux")(
    "--out /proc/foo: init and train name the path and the OS reason",
    () => {
      for (const args of [
        ["init", ...lora, "--method", "lora", "--out", "/proc/loraga-foo"],
        trainArgs("/proc/loraga-foo", "--steps", "1"),
      ]) {
        const r = runCli(args, { timeoutMs: 30_000 });
        expect(r.status).toBe(1);
        expect(r.stderr).toBe(
          "loraga: error: --out /proc/loraga-foo: cannot create directory /proc/loraga-foo: ENOENT: no such file or directory\n",
        );
      }
    },
  );

  test("--out under a regular file names the file", () => {
    const file = join(root, "a-file-9");
    writeFileSync(file, "x");
    const r = runCli(["init", ...lora, "--method", "lora", "--out", join(file, "adapter")], {
      timeoutMs: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${file} is a file, not a directory`);
  });

  test.skipIf(process.getuid?.() === 0 || process.platform === "win32")(
    "--out in a directory without write permission names the OS reason",
    () => {
      const locked = join(root, "read-only-9");
      mkdirSync(locked, { mode: 0o555 });
      const r = runCli(["init", ...lora, "--method", "lora", "--out", join(locked, "a")]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("EACCES");
    },
  );
});

describe("10. merged checkpoints and run.json describe themselves", () => {
  test("merge --dtype BF16: config.json says bfloat16 (dtype, and torch_dtype where the source has it)", () => {
    const adapter = join(root, "adapter-10");
    const demo = "demo/model"; // its config.json names the field torch_dtype
    expect(JSON.parse(readFileSync(join(demo, "config.json"), "utf8")).torch_dtype).toBe("float32");
    const init = runCli([
      "init",
      "--model",
      demo,
      "--method",
      "lora",
      "--kernels",
      "ref",
      "-q",
      "--out",
      adapter,
    ]);
    expect(init.status).toBe(0);
    const out = join(root, "merged-10");
    const m = runCli([
      "merge",
      "--model",
      demo,
      "--adapter",
      adapter,
      "--dtype",
      "BF16",
      "-q",
      "--kernels",
      "ref",
      "--out",
      out,
    ]);
    expect(m.status).toBe(0);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(config.torch_dtype).toBe("bfloat16");
    expect(config.dtype).toBe("bfloat16");
  });

  test("train --init-adapter records the adapter's r, lora_alpha and targets, not the defaults", () => {
    const adapter = join(root, "adapter-10-r4");
    const init = runCli([
      "init",
      ...est,
      "--r",
      "4",
      "--alpha",
      "8",
      "--method",
      "lora",
      "--out",
      adapter,
    ]);
    expect(init.status).toBe(0);
    const out = join(root, "run-10");
    const r = runCli([
      "train",
      ...est,
      "--data",
      data,
      "--init-adapter",
      adapter,
      "--steps",
      "1",
      "--out",
      out,
    ]);
    expect(r.status).toBe(0);
    const summary = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(summary.r).toBe(4);
    expect(summary.lora_alpha).toBe(8);
    expect(summary.target_modules).toEqual(["q_proj", "v_proj"]);
  });
});
