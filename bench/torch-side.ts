// Runs a PyTorch-side benchmark script (bench/*.py) when python3 with torch is installed, and
// returns its last JSON line; null (with the reason) when it cannot run. Shared by the suites that
// compare with PyTorch / PEFT in the same run.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function runTorchSide(
  script: string,
  args: readonly (string | number)[],
): { result: Record<string, number> | null; why: string } {
  const here = dirname(fileURLToPath(import.meta.url));
  // works from bench/ (sources) and build/bench/ (compiled)
  const path = [join(here, script), join(here, "..", "..", "bench", script)].find((p) =>
    existsSync(p),
  );
  if (path === undefined) return { result: null, why: `${script} not found` };
  const out = spawnSync("python3", [path, ...args.map(String)], {
    encoding: "utf8",
    timeout: 1_800_000,
  });
  if (out.status !== 0) {
    const why = (out.stderr ?? "").includes("No module named")
      ? "python3 with torch/transformers/peft not installed"
      : `exit ${out.status}: ${(out.stderr ?? "").trim().split("\n").at(-1)}`;
    return { result: null, why };
  }
  const line = out.stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .at(-1);
  return line === undefined
    ? { result: null, why: "no JSON output" }
    : { result: JSON.parse(line) as Record<string, number>, why: "" };
}
