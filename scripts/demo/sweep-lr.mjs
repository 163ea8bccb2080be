// The learning-rate sweep behind the demo's tuned protocol: runs `loraga demo --sweep` (each demo
// method at every rate of its grid, src/demo/methods.ts sweepRates, one seed, the demo's steps and
// batch size, scored by the loss on the validation split, which is neither training nor held-out
// data) and copies its tuned-rates.json to demo/tuned-rates.json, which `npm start` reads.
//
//   npm run build && node --experimental-wasm-relaxed-simd scripts/demo/sweep-lr.mjs
//
// Extra arguments go to `loraga demo` (e.g. --kernels wasm).

import { spawnSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = join(root, "runs", "demo-sweep");
const r = spawnSync(
  process.execPath,
  [
    "--experimental-wasm-relaxed-simd",
    join(root, "dist", "cli", "main.js"),
    "demo",
    "--sweep",
    "--out",
    out,
    ...process.argv.slice(2),
  ],
  { stdio: "inherit" },
);
if (r.status !== 0) process.exit(r.status ?? 1);
const committed = join(root, "demo", "tuned-rates.json");
copyFileSync(join(out, "tuned-rates.json"), committed);
// formatted as the repository's formatter wants it (npm test runs `biome ci`)
spawnSync(join(root, "node_modules", ".bin", "biome"), ["format", "--write", committed], {
  stdio: "inherit",
});
console.log(`wrote ${committed}`);
