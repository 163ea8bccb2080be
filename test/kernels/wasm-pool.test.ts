// The thread pool's dispatch contract (src/kernels/wasm/pool.ts), with jobs written here: every
// chunk of a job runs exactly once across the caller and the workers; a chunk that throws on the
// caller or in a worker makes run() throw (on 2 threads only after the other thread has finished
// the remaining chunks, so nothing is left running), and the pool keeps working for the next job.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { defineArgs } from "../../src/kernels/wasm/args.js";
import { ModuleBuilder } from "../../src/kernels/wasm/asm.js";
import { CONTROL, ThreadPool } from "../../src/kernels/wasm/pool.js";
import type { JobFunction } from "../../src/kernels/wasm/pool-job.js";
import { Heap } from "../../src/tensor/heap.js";

const CHUNKS = 200;

/**
 * Adds 1 to args[1 + chunk] and stores (thread + 1) in args[1 + CHUNKS + chunk]. With args[0] = 1
 * on entry, each thread's first chunk first waits (up to 5 s) until the other thread has started
 * one too, so that both threads are known to take part whatever the scheduling.
 */
const countJob: JobFunction = (_ex, ctl, _f32, layout, thread, forEachChunk) => {
  let first = Atomics.load(ctl, layout.args) === 1;
  forEachChunk((chunk) => {
    if (first) {
      first = false;
      Atomics.add(ctl, layout.args + 2 * 200 + 1, 1);
      const t0 = Date.now();
      while (Atomics.load(ctl, layout.args + 2 * 200 + 1) < 2 && Date.now() - t0 < 5000) {}
    }
    Atomics.add(ctl, layout.args + 1 + chunk, 1);
    Atomics.store(ctl, layout.args + 1 + 200 + chunk, thread + 1);
  });
};

/** Throws on chunk args[0] (on whichever thread claims it); counts the others like countJob. */
const throwJob: JobFunction = (_ex, ctl, _f32, layout, _thread, forEachChunk) => {
  forEachChunk((chunk) => {
    if (chunk === Atomics.load(ctl, layout.args))
      throw new Error(`chunk ${chunk} failed on purpose`);
    Atomics.add(ctl, layout.args + 1 + chunk, 1);
  });
};

describe("wasm thread pool", () => {
  let heap: Heap;
  let pool: ThreadPool;
  const OP_COUNT = 1;
  const OP_THROW = 2;

  beforeAll(async () => {
    heap = new Heap();
    const m = new ModuleBuilder({
      minimumPages: 1,
      maximumPages: heap.maxBytes / 65536,
      shared: true,
    });
    m.func("nothing", [], []);
    const module = await WebAssembly.compile(m.encode());
    pool = await ThreadPool.create({
      memory: heap.memory,
      module,
      // these jobs read the raw control block (layout.args + ...): no declared arguments
      jobs: [
        { name: "count", args: defineArgs({}), run: countJob },
        { name: "throw", args: defineArgs({}), run: throwJob },
      ],
      threads: 2,
      spinMs: 5,
    });
  });
  afterAll(async () => {
    await pool.dispose();
  });

  function clearCounts(): void {
    pool.ctl.fill(0, CONTROL.args, CONTROL.args + 2 + 2 * CHUNKS);
  }
  const counts = (): number[] =>
    Array.from(pool.ctl.subarray(CONTROL.args + 1, CONTROL.args + 1 + CHUNKS));

  test("every chunk runs exactly once, over both threads", () => {
    const threadsSeen = new Set<number>();
    for (let round = 0; round < 5; round++) {
      pool.prepare();
      clearCounts();
      pool.ctl[CONTROL.args] = 1; // rendezvous: both threads must take chunks
      pool.run(OP_COUNT, 2, CHUNKS);
      expect(counts().every((c) => c === 1)).toBe(true);
      for (const t of pool.ctl.subarray(CONTROL.args + 1 + CHUNKS, CONTROL.args + 1 + 2 * CHUNKS))
        threadsSeen.add(t);
    }
    expect([...threadsSeen].sort()).toEqual([1, 2]); // the caller (thread 0) and the worker
  });

  test("a failing chunk makes run() throw; the other chunks still run once; the pool recovers", () => {
    for (const nthreads of [1, 2]) {
      for (const bad of [0, 57, CHUNKS - 1]) {
        pool.prepare();
        clearCounts();
        pool.ctl[CONTROL.args] = bad;
        expect(() => pool.run(OP_THROW, nthreads, CHUNKS)).toThrow(
          /failed on purpose|failed in worker thread 1/,
        );
        const c = counts();
        expect(c[bad]).toBe(0);
        expect(c.every((x) => x <= 1)).toBe(true);
        // the thread that failed stops; on 2 threads the other one takes every remaining chunk
        // (else the caller would wait forever), alone the chunks after the failure never run
        if (nthreads === 2) expect(c.filter((_x, i) => i !== bad).every((x) => x === 1)).toBe(true);
        else expect(c.every((x, i) => x === (i < bad ? 1 : 0))).toBe(true);
        // the next job runs normally
        pool.prepare();
        clearCounts();
        pool.run(OP_COUNT, nthreads, CHUNKS);
        expect(counts().every((x) => x === 1)).toBe(true);
      }
    }
  });
});
