// The machine's WebAssembly SIMD128 arithmetic peak, measured: a generated loop of independent
// f32x4 FMA chains (relaxed_madd when the runtime validates it, else mul + add) with no memory
// traffic, on 1 thread and on `threads` worker threads started together. No wasm kernel can beat
// this rate, so FLOPs / peak is a hard lower bound on the time of a GEMM-bound step; the
// training-step suites print that bound next to PyTorch's measured time.
//
// Why 12 chains: an FMA has a 4-cycle latency and Zen 4 issues 2 per cycle, so >= 8 independent
// accumulators hide the latency; 12 leave margin and fit V8's 15 xmm registers with the 2 inputs.

import { Worker } from "node:worker_threads";
import { ModuleBuilder, relaxedSimdSupported } from "../src/kernels/wasm/asm.js";

const CHAINS = 12;

/** peak(iters) -> f32: runs iters x CHAINS f32x4 multiply-adds and returns a lane (keeps it live). */
function peakModule(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const m = new ModuleBuilder({ minimumPages: 1, maximumPages: 1, shared: true });
  const f = m.func("peak", ["i32"], ["f32"]);
  const [iters] = f.params;
  const acc = Array.from({ length: CHAINS }, () => f.local("v128"));
  const x = f.local("v128");
  const y = f.local("v128");
  f.f32(0.999).simd("f32x4.splat").set(x);
  f.f32(1e-7).simd("f32x4.splat").set(y);
  for (const a of acc) f.f32(1).simd("f32x4.splat").set(a);
  f.block();
  f.get(iters).op("i32.eqz").brIf(0);
  f.loop();
  for (const a of acc) {
    if (relaxed) f.get(a).get(x).get(y).simd("f32x4.relaxed_madd").set(a);
    else f.get(a).get(x).simd("f32x4.mul").get(y).simd("f32x4.add").set(a);
  }
  f.get(iters).i32(1).op("i32.sub").tee(iters).brIf(0);
  f.end().end();
  f.get(acc[0]);
  for (let i = 1; i < CHAINS; i++) f.get(acc[i]).simd("f32x4.add");
  f.simdLane("f32x4.extract_lane", 0);
  return m.encode();
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { module, memory, iters, gate } = workerData;
const instance = new WebAssembly.Instance(module, { env: { memory } });
const flag = new Int32Array(gate);
instance.exports.peak(1000); // compile tiers up before the timed run
Atomics.add(flag, 1, 1);
Atomics.wait(flag, 0, 0);
const t0 = performance.now();
const sink = instance.exports.peak(iters);
parentPort.postMessage({ ms: performance.now() - t0, sink });
`;

export interface WasmPeak {
  relaxed: boolean;
  /** GFLOP/s on one thread and on all threads together (an FMA counts as 2 FLOPs per lane). */
  gflops1: number;
  gflopsAll: number;
  threads: number;
}

/** Measures the SIMD128 FMA peak on 1 and `threads` threads (best of `reps` runs each). */
export async function measureWasmPeak(threads: number, reps = 3): Promise<WasmPeak> {
  const relaxed = relaxedSimdSupported();
  const module = await WebAssembly.compile(peakModule(relaxed));
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const iters = 20_000_000; // ~0.2 s per thread at ~60 GFLOP/s
  const flopsPerThread = iters * CHAINS * 4 * 2;
  const run = async (n: number): Promise<number> => {
    const gate = new SharedArrayBuffer(8);
    const flag = new Int32Array(gate);
    const workers = Array.from(
      { length: n },
      () => new Worker(WORKER_SOURCE, { eval: true, workerData: { module, memory, iters, gate } }),
    );
    try {
      const done = workers.map(
        (w) =>
          new Promise<{ ms: number }>((resolve, reject) => {
            w.once("message", resolve);
            w.once("error", reject);
          }),
      );
      while (Atomics.load(flag, 1) < n) await new Promise((r) => setTimeout(r, 1));
      const t0 = performance.now();
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      await Promise.all(done);
      const wall = performance.now() - t0;
      return (n * flopsPerThread) / (wall / 1000) / 1e9;
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  };
  let gflops1 = 0;
  let gflopsAll = 0;
  for (let r = 0; r < reps; r++) {
    gflops1 = Math.max(gflops1, await run(1));
    gflopsAll = Math.max(gflopsAll, await run(threads));
  }
  return { relaxed, gflops1, gflopsAll, threads };
}
