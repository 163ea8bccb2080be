// Property test of the options layer, in process: random flag / --config combinations for every
// subcommand go through the real program (commander, the one schema, each command's checks) in
// dry-run mode, which stops after validation. Every case must either validate (exit 0, no output)
// or fail as a usage error (exit 2, a `loraga: error: ` line) — never another error — and nothing
// may be created on disk. The flags are read from the program itself, so new flags are covered.
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Option } from "commander";
import { expect, test } from "vitest";
import { buildProgram, runOn } from "../../src/cli/program.js";
import { Rng } from "../../src/util/random.js";
import { tempDir } from "../helpers/cli.js";

const CASES = 10_000;
const MODEL = "test/fixtures/models/llama-gqa";
const DATA = "test/fixtures/e2e/data.jsonl";

/** Files and directories under `dir`, recursively, sorted. */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).sort();
}

test(`${CASES} random flag / --config combinations: validated, or a usage error; nothing written`, async () => {
  const sandbox = tempDir("loraga-fuzz-");
  mkdirSync(join(sandbox, "adapter"));
  writeFileSync(join(sandbox, "file.txt"), "x");

  // one program, parsed again for every case (commander restores its state before each parse)
  let stderr = "";
  const io = { writeErr: (s: string) => (stderr += s) };
  const program = buildProgram({ dryRun: true }, io);
  const commands = program.commands.map((c) => ({
    name: c.name(),
    options: c.options.filter((o: Option) => o.long !== "--help" && o.long !== "--config"),
    positional: c.registeredArguments.length > 0,
  }));
  const paths = [
    MODEL,
    DATA,
    join(sandbox, "adapter"),
    join(sandbox, "file.txt"),
    join(sandbox, "new-out"),
    join(sandbox, "missing", "deep", "out"),
    join(sandbox, "file.txt", "below"),
    sandbox,
  ];
  const words = [
    ...["0", "1", "2", "3", "8", "16", "65", "-1", "-0", "1e-4", "0.5", "0.9,0.999", "1.5"],
    ...["two", "", " ", "NaN", "Infinity", "1e309", "9007199254740993", "0x10", "1,2,3"],
    ...["512M", "2G", "1K", "0B", "lora", "lora-ga", "full", "pissa", "foo", "wasm", "ref"],
    ...["f32", "bf16", "int8", "nf4", "ArB2r", "random", "stable", "gd_scale", "peft", "adamw"],
    ...["sgd", "cosine", "q_proj,v_proj", "all-linear", "(", "[a-z", "c_attn|q_proj", "jsonl"],
  ];
  const rng = new Rng(20240512);
  const pick = <T>(items: readonly T[]): T => items[rng.below(items.length)];
  const textValue = () => (rng.uniform() < 0.3 ? pick(paths) : pick(words));
  const configValue = (): unknown => {
    switch (rng.below(8)) {
      case 0:
        return rng.below(20) - 3;
      case 1:
        return rng.uniform() * 4 - 1;
      case 2:
        return rng.uniform() < 0.5;
      case 3:
        return null;
      case 4:
        return [pick(words), pick(words)];
      case 5:
        return { nested: pick(words) };
      default:
        return textValue();
    }
  };

  // --config files: a pool per command, written once (files are slow to write on some disks),
  // each a random mapping of that command's flags (kebab-case or camelCase keys) to random values,
  // YAML or JSON; a few malformed ones
  const configDir = join(sandbox, "configs");
  mkdirSync(configDir);
  const configs = new Map<string, string[]>();
  let fileCount = 0;
  for (const command of commands) {
    const files: string[] = [];
    for (let f = 0; f < 24; f++) {
      const entries: Record<string, unknown> = {};
      for (let k = rng.below(5); k > 0; k--) {
        const o = pick(command.options);
        const key = (o.long ?? "").slice(2);
        const name =
          rng.uniform() < 0.5 ? key : key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
        entries[name] =
          o.required || o.optional ? configValue() : rng.uniform() < 0.8 || configValue();
      }
      if (rng.uniform() < 0.1) entries.model = MODEL;
      if (rng.uniform() < 0.1) entries[pick(["bogus", "config", "no-such-flag"])] = 1;
      const json = rng.uniform() < 0.3;
      const file = join(configDir, `${fileCount++}.${json ? "json" : "yaml"}`);
      const text =
        rng.uniform() < 0.05
          ? pick(["[1, 2]", "{", "key: [", "- a\n- b", "42", ""])
          : json
            ? JSON.stringify(entries)
            : Object.entries(entries)
                .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
                .join("\n");
      writeFileSync(file, text);
      files.push(file);
    }
    configs.set(command.name, files);
  }
  const before = listing(sandbox);

  const failures: string[] = [];
  let validated = 0;
  for (let i = 0; i < CASES; i++) {
    const command = pick(commands);
    const argv = [command.name];
    if (command.positional) for (let k = rng.below(3); k > 0; k--) argv.push(pick(paths));
    // half the cases start from valid required options, to reach the deeper checks
    if (rng.uniform() < 0.5) {
      for (const o of command.options) {
        if (o.long === "--model") argv.push("--model", MODEL);
        if (o.long === "--data") argv.push("--data", DATA);
        if (o.long === "--out") argv.push("--out", join(sandbox, `out-${i}`));
        if (o.long === "--adapter" || o.long === "--init" || o.long === "--final")
          argv.push(o.long, join(sandbox, "adapter"));
      }
    }
    for (let k = rng.below(7); k > 0; k--) {
      const o = pick(command.options);
      const long = o.long ?? "";
      const takesValue = o.required || o.optional;
      if (!takesValue) {
        argv.push(rng.uniform() < 0.5 || o.short === undefined ? long : o.short);
      } else if (rng.uniform() < 0.04) {
        argv.push(long); // value missing (or the next flag taken as it)
      } else {
        argv.push(long, textValue());
      }
    }
    if (rng.uniform() < 0.03) argv.push(pick(["--bogus", "-z", "--r=2", "extra"]));
    if (rng.uniform() < 0.3) argv.push("--config", pick(configs.get(command.name) ?? []));
    if (rng.uniform() < 0.01) argv.push("--config", join(sandbox, "no-such-config.yaml"));

    stderr = "";
    let code: number;
    try {
      code = await runOn(program, argv, io);
    } catch (err) {
      failures.push(`${JSON.stringify(argv)}: threw ${String(err)}`);
      continue;
    }
    if (code === 0 && stderr === "") validated++;
    else if (code !== 2 || !stderr.startsWith("loraga: error: "))
      failures.push(`${JSON.stringify(argv)} -> exit ${code}: ${stderr.split("\n")[0]}`);
    if (failures.length > 20) break;
  }
  expect(failures).toEqual([]);
  // both outcomes are exercised
  expect(validated).toBeGreaterThan(CASES / 20);
  expect(validated).toBeLessThan(CASES);
  expect(listing(sandbox)).toEqual(before);
}, 120_000);
