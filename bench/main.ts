// `npm run bench`: runs every benchmark suite and prints a table, or JSON lines with --json.
// Suites register themselves in SUITES; `npm run bench -- gemm svd` runs only the named ones.
// ONLY_WHEN_NAMED suites take hours on a small machine and run only when named.

import { createReporter, type Reporter } from "./report.js";

type Suite = (reporter: Reporter, options: { quick: boolean }) => Promise<void>;

const SUITES: { [name: string]: () => Promise<Suite> } = {
  gemm: async () => (await import("./gemm.js")).gemmSuite,
  "gemm-native": async () => (await import("./gemm.js")).gemmNativeSuite,
  "gemm-bf16": async () => (await import("./gemm.js")).gemmBf16Suite,
  "gemm-skinny": async () => (await import("./gemm.js")).gemmSkinnySuite,
  "gemm-webgpu": async () => (await import("./gemm-webgpu.js")).gemmWebGpuSuite,
  "webgpu-weights": async () => (await import("./webgpu-weights.js")).webgpuWeightsSuite,
  "train-step": async () => (await import("./train-step.js")).trainStepSuite,
  svd: async () => (await import("./svd.js")).svdSuite,
  "lora-ga-init": async () => (await import("./lora-ga-init.js")).loraGaInitSuite,
  "lora-train": async () => (await import("./lora-train.js")).loraTrainSuite,
  "t5-train": async () => (await import("./t5-train.js")).t5TrainSuite,
  memory: async () => (await import("./memory.js")).memorySuite,
  "memory-scale": async () => (await import("./memory-scale.js")).memoryScaleSuite,
  generate: async () => (await import("./generate.js")).generateSuite,
  "real-size": async () => (await import("./real-size.js")).realSizeSuite,
  offload: async () => (await import("./offload.js")).offloadSuite,
  scale: async () => (await import("./scale.js")).scaleSuite,
};

const ONLY_WHEN_NAMED = new Set(["scale"]);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const names = args.filter((a) => !a.startsWith("--"));
  const unknown = names.filter((n) => !(n in SUITES));
  if (unknown.length > 0) {
    throw new Error(
      `unknown bench suite(s) ${unknown.join(", ")}; known: ${Object.keys(SUITES).join(", ")}`,
    );
  }
  const reporter = createReporter(json);
  for (const [name, load] of Object.entries(SUITES)) {
    if (names.length > 0 ? !names.includes(name) : ONLY_WHEN_NAMED.has(name)) continue;
    reporter.note(`\n== ${name} ==`);
    const suite = await load();
    await suite(reporter, { quick });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
