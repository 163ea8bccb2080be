// Loads the native engine's Node-API addon (native/src/, built into build/native/ by
// scripts/build-native.mjs during `npm install`), or says why it cannot: the build's recorded
// reason (no compiler, compile error, skipped) or the load error. Node only: imported lazily by
// kernels/index.ts, never by browser code.

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The addon's functions (native/src/addon.c documents each). */
export interface NativeAddon {
  /** Micro-kernels this CPU can run, best first ("avx512", "avx2", "generic"). */
  kernels(): string[];
  createEngine(u8: Uint8Array, threads: number, kernel?: string, spinMicros?: number): NativeEngine;
  engineInfo(engine: NativeEngine): NativeEngineInfo;
  gemm(engine: NativeEngine, params: Float64Array, heapBytes: number): void;
  /** One small non-GEMM kernel on the calling thread (src/kernels/native/rowops.ts). */
  rowop(engine: NativeEngine, params: Float64Array, heapBytes: number): void;
  destroyEngine(engine: NativeEngine): void;
  baseAddress(u8: Uint8Array): number;
}

/** An engine handle (a Node-API external): one thread pool and its packing buffers. */
export type NativeEngine = { readonly __nativeEngine: unique symbol };

export interface NativeEngineInfo {
  kernel: string;
  /** register tile rows x columns */
  mr: number;
  nr: number;
  /** cache blocks: rows of packed A, inner-dim steps, columns of packed B */
  mc: number;
  kc: number;
  nc: number;
  threads: number;
  /** whether gemm takes a bf16 b (AVX512-BF16 kernels beside this micro-kernel) */
  bf16: boolean;
}

export type AddonLoad = { addon: NativeAddon } | { error: string };

/** The package root: the nearest folder above this module with a package.json (src/, dist/ and
 * the benchmarks' build/src/ sit at different depths below it). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return dir;
}

let cached: AddonLoad | undefined;

/** The addon, or the reason it is unavailable (loaded once per process). */
export function loadNativeAddon(): AddonLoad {
  cached ??= load();
  return cached;
}

function load(): AddonLoad {
  const outDir = join(packageRoot(), "build", "native");
  const path = join(outDir, "loraga_native.node");
  if (!existsSync(path)) {
    return { error: `the native engine is not built: ${buildReason(join(outDir, "status.json"))}` };
  }
  try {
    return { addon: createRequire(import.meta.url)(path) as NativeAddon };
  } catch (error) {
    return { error: `cannot load ${path}: ${String(error)}` };
  }
}

function buildReason(statusPath: string): string {
  if (!existsSync(statusPath)) {
    return "build/native/loraga_native.node is missing (run `node scripts/build-native.mjs`)";
  }
  try {
    const status = JSON.parse(readFileSync(statusPath, "utf8")) as { reason?: unknown };
    return String(status.reason);
  } catch {
    return `unreadable ${statusPath}`;
  }
}
