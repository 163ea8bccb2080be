// How much more host memory this process can take before the system runs out (Node only), for
// checks that refuse work which would otherwise be killed for memory part-way through (the
// kernel's OOM killer ends a process without a message). It is the kernel's estimate of memory
// available to new allocations without swapping (MemAvailable, which os.freemem() reports on
// Linux) plus free swap, and within a cgroup memory limit (process.constrainedMemory) at most
// that limit less what the process already holds.

import { readFileSync } from "node:fs";
import { freemem } from "node:os";

/** Bytes this process can still allocate, by the measures above. */
export function availableHostMemory(): number {
  let bytes = freemem() + swapFree();
  const limit = process.constrainedMemory?.() ?? 0; // 0, or 2^64 when there is no limit
  if (limit > 0 && limit < Number.MAX_SAFE_INTEGER)
    bytes = Math.min(bytes, limit - process.memoryUsage().rss);
  return Math.max(0, bytes);
}

/** SwapFree of /proc/meminfo in bytes; 0 where there is no such file (not Linux). */
function swapFree(): number {
  try {
    const line = /^SwapFree:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
    return line === null ? 0 : Number(line[1]) * 1024;
  } catch {
    return 0;
  }
}
