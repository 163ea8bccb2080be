// The README's "Quick start: the library" program, run as it is written. The ```ts block under that
// heading is taken from README.md and only these are replaced (each must occur exactly once):
//   from "loraga"           -> the built dist/index.js (npm test builds dist/ first)
//   const modelDir = "...";  -> demo/model, the embedded demo model (word tokenizer)
//   const dataFile = "...";  -> a 16-row prompt/completion JSONL written here
//   const outDir = "...";    -> a temporary directory
//   const steps = <n>;       -> 4
//   const maxLength = <n>;   -> 32
// It then runs as an ES module in a child node with --experimental-wasm-relaxed-simd. Checked: it
// exits 0, prints finite losses and a reply, writes train.jsonl (one record per step), the
// trained adapter (its record says `trained`) and the converted one (rank 2r, the original base).
// A second test type-checks the block (only the import replaced) against dist/index.d.ts with the
// project's strict compiler options, so that it also compiles as the TypeScript it claims to be.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import { afterAll, expect, test } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
const STEPS = 4;

/** The first ```ts block after the "## Quick start: the library" heading. */
function libraryExample(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.indexOf("\n## Quick start: the library\n");
  if (section < 0) throw new Error('README.md has no "## Quick start: the library" section');
  const block = /```ts\n([\s\S]*?)\n```/.exec(readme.slice(section));
  if (block === null) throw new Error("no ```ts block in the library quick start");
  return block[1];
}

/** Replaces the single match of `pattern` in `source`; fails when it matches zero or many times. */
function replaceOnce(source: string, pattern: RegExp, replacement: string): string {
  const count = [...source.matchAll(new RegExp(pattern.source, "g"))].length;
  if (count !== 1) throw new Error(`README example: ${pattern} matches ${count} times, not once`);
  return source.replace(pattern, replacement);
}

const distIndex = join(ROOT, "dist", "index.js");
const work = mkdtempSync(join(tmpdir(), "loraga-readme-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("the README's library example estimates, inits, trains, saves and generates", () => {
  const dataFile = join(work, "train.jsonl");
  const rows = Array.from({ length: 16 }, (_, i) => {
    const a = (i * 7) % 10;
    const b = (i * 3 + 1) % 10;
    return JSON.stringify({ prompt: `${a} + ${b} =`, completion: ` ${a + b}` });
  });
  writeFileSync(dataFile, `${rows.join("\n")}\n`);
  const outDir = join(work, "run");
  const settings: [RegExp, string][] = [
    [/from "loraga";/, `from ${JSON.stringify(pathToFileURL(distIndex).href)};`],
    [/const modelDir = "[^"]*";/, `const modelDir = ${JSON.stringify(join(ROOT, "demo/model"))};`],
    [/const dataFile = "[^"]*";/, `const dataFile = ${JSON.stringify(dataFile)};`],
    [/const outDir = "[^"]*";/, `const outDir = ${JSON.stringify(outDir)};`],
    [/const steps = \d+;/, `const steps = ${STEPS};`],
    [/const maxLength = \d+;/, "const maxLength = 32;"],
  ];
  const program = settings.reduce((src, [p, r]) => replaceOnce(src, p, r), libraryExample());
  const file = join(work, "example.mjs");
  writeFileSync(file, program);

  const run = spawnSync(process.execPath, ["--experimental-wasm-relaxed-simd", file], {
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  // the reply is the model's free text: the demo model may continue it over several lines
  const [lossLine, ...replyLines] = run.stdout.split("\n");
  const reply = replyLines.join("\n").trim();
  const losses = /^loss: step 1 (\S+), step (\d+) (\S+)$/.exec(lossLine);
  expect(losses, lossLine).not.toBeNull();
  expect(Number(losses?.[2])).toBe(STEPS);
  expect(Number.isFinite(Number(losses?.[1])) && Number.isFinite(Number(losses?.[3]))).toBe(true);
  expect(reply.length).toBeGreaterThan(0);

  const log = readFileSync(join(outDir, "train.jsonl"), "utf8").trim().split("\n");
  expect(log.map((l) => JSON.parse(l).step)).toEqual([1, 2, 3, 4]);
  const trained = JSON.parse(
    readFileSync(join(outDir, "adapter", "adapter_config.json"), "utf8"),
  ) as { r: number };
  const converted = JSON.parse(
    readFileSync(join(outDir, "adapter-converted", "adapter_config.json"), "utf8"),
  ) as { r: number };
  expect(trained.r).toBe(8);
  expect(converted.r).toBe(16);
  const header = readFileSync(join(outDir, "adapter", "adapter_model.safetensors"));
  const metadata = JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString())
    .__metadata__ as Record<string, string>;
  expect(JSON.parse(metadata.loraga_init)).toMatchObject({ offset_base: true, trained: true });
});

test("the README's library example type-checks against the built declarations", () => {
  const file = join(work, "example.mts");
  writeFileSync(file, replaceOnce(libraryExample(), /from "loraga";/, `from "${distIndex}";`));
  const program = ts.createProgram([file], {
    strict: true,
    exactOptionalPropertyTypes: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2022.d.ts"],
    types: ["node"],
    typeRoots: [join(ROOT, "node_modules", "@types")],
    skipLibCheck: true,
    noEmit: true,
  });
  const errors = ts
    .getPreEmitDiagnostics(program)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  expect(errors).toEqual([]);
});
