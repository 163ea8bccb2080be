// The machine's own ceiling, measured in the same run: numpy (OpenBLAS) timings obtained by
// running bench/ceiling.py with python3. Returns null when python3 or numpy is missing, so the
// benchmark still runs (and says so) on a machine without them.

import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface CeilingRow {
  kernel: string;
  [key: string]: string | number;
}

export function measureCeiling(task: object): CeilingRow[] | null {
  const here = dirname(fileURLToPath(import.meta.url));
  // works from bench/ (sources) and build/bench/ (compiled)
  const candidates = [join(here, "ceiling.py"), join(here, "..", "..", "bench", "ceiling.py")];
  const script = candidates.find((p) => {
    try {
      return spawnSync("test", ["-f", p]).status === 0;
    } catch {
      return false;
    }
  });
  if (script === undefined) return null;
  const env = { ...process.env };
  // Older OpenBLAS needs these on some CPUs, but they slow a current numpy: unset for this call.
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const out = spawnSync("python3", [script, JSON.stringify(task)], {
    encoding: "utf8",
    env,
    timeout: 600_000,
  });
  if (out.status !== 0) return null;
  return out.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as CeilingRow);
}
