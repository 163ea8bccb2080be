// Compiles a TypeScript entry file (and what it imports) to JavaScript for a child Node process,
// which cannot run .ts on Node 20. Emits into `out` with the repository root as rootDir, so the
// entry's relative imports keep working; type errors do not block emit (tsc --noCheck: the
// project's own typecheck covers these files).

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, relative } from "node:path";

export const ROOT = join(import.meta.dirname, "..", "..");

/** Compiles `entry` (an absolute .ts path inside the repository) into `out`; returns the .js path. */
export function compileChild(entry: string, out: string): string {
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const args = [
    tsc,
    "--ignoreConfig",
    entry,
    "--outDir",
    out,
    "--rootDir",
    ROOT,
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--target",
    "es2022",
    "--lib",
    "es2022,dom",
    "--types",
    "node",
    "--skipLibCheck",
    "--noCheck",
  ];
  const run = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  const js = join(out, relative(ROOT, entry)).replace(/\.ts$/, ".js");
  if (!existsSync(js)) {
    throw new Error(`tsc did not produce ${js}: ${run.error ?? ""}${run.stdout}${run.stderr}`);
  }
  return js;
}
