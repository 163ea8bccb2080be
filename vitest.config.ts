import { defineConfig } from "vitest/config";

// Two-core machines: at most two test files at a time, each in its own process.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    // relaxed SIMD (FMA) in the wasm kernels needs this V8 flag on Node 20; without it they use plain SIMD
    execArgv: ["--experimental-wasm-relaxed-simd"],
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
  },
});
