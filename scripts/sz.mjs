// Lines of code per src/ folder, printed by CI after the tests so that growth shows in every log
// (files should tell one story and stay small; the idea is tinygrad's sz.py). Counts non-blank
// lines of .ts files, one row per folder (its own files: src/kernels/wasm has its own row), largest
// first, then the files over the soft cap (500 lines; 800 for a model file with forward and
// backward). It only prints: it never fails the build. Usage: node scripts/sz.mjs

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";

const ROOT = join(import.meta.dirname, "..");
const SRC = join(ROOT, "src");
const SOFT_CAP = 500;
const MODEL_CAP = 800;

/** Every .ts file under dir, recursively, as paths. */
function tsFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

const countLines = (file) =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "").length;

const files = tsFiles(SRC).map((path) => ({ path: relative(ROOT, path), lines: countLines(path) }));
const byFolder = new Map();
for (const f of files) {
  const folder = dirname(f.path);
  const row = byFolder.get(folder) ?? { files: 0, lines: 0 };
  row.files++;
  row.lines += f.lines;
  byFolder.set(folder, row);
}

const rows = [...byFolder].sort((a, b) => b[1].lines - a[1].lines);
const width = Math.max(...rows.map(([name]) => name.length), "total".length);
const line = (name, nFiles, nLines) =>
  `${name.padEnd(width)}  ${String(nFiles).padStart(5)}  ${String(nLines).padStart(7)}`;
console.log(`${"folder".padEnd(width)}  ${"files".padStart(5)}  ${"lines".padStart(7)}`);
for (const [name, row] of rows) console.log(line(name, row.files, row.lines));
const total = files.reduce((n, f) => n + f.lines, 0);
console.log(line("total", files.length, total));

const cap = (path) => (path.startsWith("src/models/") ? MODEL_CAP : SOFT_CAP);
const over = files.filter((f) => f.lines > cap(f.path)).sort((a, b) => b.lines - a.lines);
if (over.length > 0) {
  console.log(`\nfiles over the soft cap (${SOFT_CAP} lines, ${MODEL_CAP} in src/models):`);
  const pathWidth = Math.max(...over.map((f) => f.path.length));
  for (const f of over)
    console.log(`  ${f.path.padEnd(pathWidth)}  ${String(f.lines).padStart(5)}`);
}
