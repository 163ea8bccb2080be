// One measured job of the offload suite (bench/offload.ts), run as its own process so that its
// peak RSS is its own: load a checkpoint directory with a frozen-weight storage, attach LoRA
// adapters (r 16 on every linear but lm_head), and run AdamW steps on one random batch.
// Prints one JSON line: engine, whether the weights were offloaded, load time, engine heap after
// load and at its peak, peak RSS (process.resourceUsage().maxRSS), seconds per step (the mean of
// the steps after the first, which also plans the buffers), tokens/s, the process CPU seconds per
// step over the same steps (all threads; less sensitive than wall time to other processes on a
// shared machine) and the losses.
// Usage: node offload-job.js <dir> <weightDtype f32|bf16> <offload auto|on|off> <B> <T> <steps>

import { createKernels } from "../src/kernels/index.js";
import { loadModel } from "../src/models/model.js";
import type { OffloadMode } from "../src/models/weights.js";
import { LoraConfig } from "../src/peft/config.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { cpuCount } from "../src/platform/threads.js";
import { Heap } from "../src/tensor/heap.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { createOptimizer } from "../src/train/optimizer.js";
import { Rng } from "../src/util/random.js";

const MIB = 2 ** 20;
const MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

async function main(): Promise<void> {
  const [dir, dtype, offload, b, t, n] = process.argv.slice(2);
  const B = Number(b);
  const T = Number(t);
  const steps = Number(n);
  const heap = new Heap();
  let engine = "";
  const kernels = await createKernels("auto", {
    heap,
    threads: await cpuCount(),
    onFallback: (reason) => {
      engine = `wasm (${reason})`;
    },
  });
  const t0 = performance.now();
  const model = await loadModel(dir, {
    kernels,
    weightDtype: dtype as "f32" | "bf16",
    offloadFrozen: offload as OffloadMode,
  });
  const loadS = (performance.now() - t0) / 1000;
  const afterLoad = heap.bytesInUse;
  model.setMemoryOptions({ gradient_checkpointing: true });
  const peft = getPeftModel(
    model,
    new LoraConfig({ r: 16, lora_alpha: 32, target_modules: MODULES }),
    { seed: 1 },
  );
  const params = peft
    .parameters()
    .map((p) => ({ name: p.name, param: p.param, grad: p.grad as Tensor }));
  const optimizer = createOptimizer(kernels, params, { kind: "adamw" });
  const rng = new Rng(7);
  const inputIds = Int32Array.from({ length: B * T }, () => rng.below(model.vocabSize));
  const batch = { batchSize: B, seqLen: T, inputIds, labels: inputIds.slice() };
  const losses: number[] = [];
  const times: number[] = [];
  let cpuFrom = process.cpuUsage();
  for (let s = 0; s < steps; s++) {
    if (s === 1) cpuFrom = process.cpuUsage();
    const s0 = performance.now();
    peft.zeroGrad();
    losses.push(model.lossAndGrads(batch).loss);
    optimizer.update(1e-4);
    times.push((performance.now() - s0) / 1000);
  }
  const timed = times.length > 1 ? times.slice(1) : times;
  const stepS = timed.reduce((a, x) => a + x, 0) / timed.length;
  const cpu = process.cpuUsage(cpuFrom);
  const cpuStepS = (cpu.user + cpu.system) / 1e6 / timed.length;
  const offHeap = model.linearWeightBytes().offHeap > 0;
  process.stdout.write(
    `${JSON.stringify({
      engine: engine === "" ? kernels.name : engine,
      offloaded: offHeap,
      load_s: loadS,
      heap_after_load_mib: afterLoad / MIB,
      peak_heap_mib: heap.peakBytes / MIB,
      peak_rss_mib: (process.resourceUsage().maxRSS * 1024) / MIB,
      step_s: stepS,
      tokens_per_s: (B * T) / stepS,
      cpu_step_s: cpuStepS,
      losses: losses.map((l) => Number(l.toFixed(6))).join(" "),
    })}\n`,
  );
  optimizer.dispose();
  peft.dispose();
  model.dispose();
  await kernels.dispose();
}

main().catch((err: unknown) => {
  process.stderr.write(`offload-job: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
