// Thread pool for the wasm kernels: worker threads that share the Heap's WebAssembly.Memory and
// take jobs through a control block of i32 slots at the start of that memory (offsets below
// RESERVED_BYTES, which the Heap never hands out). The calling thread is thread 0 and takes part
// in every job; workers are threads 1..n-1.
//
// Dispatch protocol. Work is split into chunks that threads claim one at a time, so a thread
// that wakes late (a parked worker takes about a millisecond to wake) or is descheduled on a busy
// machine simply takes fewer chunks, and nobody waits for a thread that has nothing to do.
//   CLAIM (one 64-bit word): (job sequence << 32) | next chunk index; index LOCKED while the
//          caller writes a job's arguments (a seqlock: a worker that read arguments of job s
//          can claim only with a compare-exchange that still finds sequence s, unlocked).
//   caller: CLAIM = (s+1, LOCKED) -> write args (args.ts), OP, CHUNKS, NTHREADS; FINISHED = 0
//           -> CLAIM = (s+1, 0) -> GEN += 1 (notify if a worker is parked) -> claim and run
//           chunks itself -> spin (then sleep, see run()) until FINISHED == CHUNKS -> throw if
//           ERROR != 0.
//   worker: spin on GEN (for spinMs, then park in Atomics.wait(GEN)); on a change, read CLAIM
//           and the args, then claim (compare-exchange) and run chunks until none is left,
//           adding 1 to FINISHED after each (also after an error, which it records in ERROR),
//           and notifying FINISHED when the caller sleeps on it (CALLER_WAITING).
// Job functions are shipped to workers as source text (Function.prototype.toString), so each
// must be self-contained: no imports, no outer references. Their argument layouts (args.ts) go to
// the workers as data in the init message; each thread builds a view of each job's arguments once
// (args.ts) and passes it to the job, with a view of its own scratch pointers.
// One pool per Heap at a time (guarded by LOCK).

import { type PlatformWorker, spawnWorker } from "../../platform/threads.js";
import { RESERVED_BYTES } from "../../tensor/heap.js";
import {
  type ArgLayout,
  type ArgRow,
  type ArgSpec,
  type ArgValues,
  argsView,
  type ControlViews,
  defineArgs,
  writeArgs,
} from "./args.js";
import type { AnyPoolJob, ErasedJobFunction, PoolJob } from "./pool-job.js";

/** The control block holds scratch slots for at most this many threads. */
const MAX_THREADS = 256;
/** i32 slots of each thread's scratch layout (PoolOptions.threadScratch). */
export const SCRATCH_SLOTS = 4;
/** i32 slot indices of the control block (which starts at byte CONTROL_OFFSET). */
export const CONTROL = {
  lock: 0,
  gen: 1,
  finished: 2,
  op: 3,
  nthreads: 4,
  error: 5,
  sleeping: 6,
  chunks: 7,
  /** 1 while the caller sleeps in Atomics.wait(FINISHED) for the last chunks (see run()) */
  callerWaiting: 9,
  /** BigInt64 index of the CLAIM word (i32 slots 16 and 17) */
  claim64: 8,
  /** first job argument slot (even, for f64 arguments); arguments may use the slots to `scratch` */
  args: 24,
  /** thread t's scratch slots at scratch + SCRATCH_SLOTS t (MAX_THREADS threads, to the end) */
  scratch: RESERVED_BYTES / 4 - SCRATCH_SLOTS * MAX_THREADS,
} as const;
const CONTROL_OFFSET = 0;
const CONTROL_INTS = RESERVED_BYTES / 4;
const OP_EXIT = -1;
/** How long the caller spins for the other threads' last chunks before it sleeps (ms). */
const CALLER_SPIN_MS = 0.5;
/** The bound on one such sleep (ms). */
const CALLER_WAIT_MS = 1;
/** Whether this thread may block in Atomics.wait (not a browser's main thread): else it spins. */
const CALLER_CAN_WAIT = ((): boolean => {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0); // "not-equal" at once
    return true;
  } catch {
    return false;
  }
})();
/** Chunk index meaning "arguments being written". */
const LOCKED = 0xffffffffn;

const NO_SCRATCH = defineArgs({});

/**
 * The chunk loop every job runs (caller and workers): claim a chunk (-1: none left), run it,
 * report it finished. A failure is flagged in the control block BEFORE finish(), so the caller,
 * which returns once every chunk is finished, always sees it; then it propagates.
 * Self-contained: also shipped to the workers as source (see ThreadPool.create).
 */
function chunkLoop(
  ctl: Int32Array,
  errorSlot: number,
  thread: number,
  claim: () => number,
  finish: () => void,
): (work: (chunk: number) => void) => void {
  return (work) => {
    for (;;) {
      const chunk = claim();
      if (chunk < 0) break;
      try {
        work(chunk);
      } catch (err) {
        Atomics.store(ctl, errorSlot, thread + 1);
        throw err;
      } finally {
        finish();
      }
    }
  };
}

interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: typeof CONTROL;
  controlOffset: number;
  controlInts: number;
  thread: number;
  spinMs: number;
  /** each job's argument layout (ArgLayout.rows), indexed by OP - 1 */
  jobArgs: (readonly ArgRow[])[];
  /** the layout of the thread's scratch slots */
  scratchRows: readonly ArgRow[];
  scratchSlots: number;
}

/** The worker's whole program; self-contained (shipped as source), `jobs` indexed by OP - 1. */
function workerMain(
  port: { on(h: (m: unknown) => void): void; post(m: unknown): void },
  jobs: ErasedJobFunction[],
  chunkLoop: (
    ctl: Int32Array,
    errorSlot: number,
    thread: number,
    claim: () => number,
    finish: () => void,
  ) => (work: (chunk: number) => void) => void,
  view: typeof argsView,
): void {
  port.on((message) => {
    const init = message as WorkerInit;
    const L = init.control;
    const ex = new WebAssembly.Instance(init.module, { env: { memory: init.memory } }).exports;
    const ctl = new Int32Array(init.memory.buffer, init.controlOffset, init.controlInts);
    const ctlF32 = new Float32Array(init.memory.buffer, init.controlOffset, init.controlInts);
    const ctlF64 = new Float64Array(init.memory.buffer, init.controlOffset, init.controlInts / 2);
    const scratchBase = L.scratch + init.scratchSlots * init.thread;
    const jobArgs = init.jobArgs.map((rows) => view(ctl, ctlF32, ctlF64, L.args, rows));
    const scratch = view(ctl, ctlF32, ctlF64, scratchBase, init.scratchRows);
    const claimWord = new BigInt64Array(init.memory.buffer, init.controlOffset, L.claim64 + 1);
    const locked = 0xffffffffn;
    let seen = Atomics.load(ctl, L.gen);
    port.post({ ready: init.thread });
    for (;;) {
      let gen = Atomics.load(ctl, L.gen);
      if (gen === seen) {
        const t0 = performance.now();
        let spins = 0;
        for (;;) {
          gen = Atomics.load(ctl, L.gen);
          if (gen !== seen) break;
          spins++;
          if ((spins & 0x3ff) === 0 && performance.now() - t0 > init.spinMs) {
            Atomics.add(ctl, L.sleeping, 1);
            Atomics.wait(ctl, L.gen, seen);
            Atomics.sub(ctl, L.sleeping, 1);
          }
        }
      }
      seen = gen;
      const word = Atomics.load(claimWord, L.claim64);
      const op = Atomics.load(ctl, L.op);
      if (op === -1) return; // OP_EXIT
      if ((word & 0xffffffffn) === locked) continue; // a newer job is being written: GEN will move
      const seq = word >> 32n;
      const chunks = Atomics.load(ctl, L.chunks);
      if (init.thread >= Atomics.load(ctl, L.nthreads) || op < 1 || op > jobs.length) continue;
      const claim = (): number => {
        for (;;) {
          const w = Atomics.load(claimWord, L.claim64);
          if (w >> 32n !== seq) return -1;
          const index = Number(w & 0xffffffffn);
          if (index >= chunks) return -1;
          if (Atomics.compareExchange(claimWord, L.claim64, w, w + 1n) === w) return index;
        }
      };
      const finish = (): void => {
        Atomics.add(ctl, L.finished, 1);
        if (Atomics.load(ctl, L.callerWaiting) !== 0) Atomics.notify(ctl, L.finished);
      };
      try {
        jobs[op - 1](
          ex,
          ctl,
          ctlF32,
          L,
          init.thread,
          chunkLoop(ctl, L.error, init.thread, claim, finish),
          jobArgs[op - 1],
          scratch,
        );
      } catch (err) {
        port.post({ error: String(err), thread: init.thread });
      }
    }
  });
}

export interface PoolOptions {
  memory: WebAssembly.Memory;
  module: WebAssembly.Module;
  /** The jobs; a job's OP code is its index + 1. */
  jobs: readonly AnyPoolJob[];
  /** The layout of each thread's scratch slots (at most SCRATCH_SLOTS); default none. */
  threadScratch?: ArgLayout;
  threads: number;
  spinMs: number;
}

export class ThreadPool {
  readonly threads: number;
  /** Control block views (never stale: the block sits below the initial memory size). */
  readonly ctl: Int32Array;
  readonly ctlF32: Float32Array;
  private readonly views: ControlViews;
  /** The calling thread's instance exports. */
  readonly exports: WebAssembly.Exports;
  private readonly workers: PlatformWorker[];
  private readonly jobs: readonly AnyPoolJob[];
  private readonly opCodes: Map<AnyPoolJob, number>;
  private readonly threadScratch: ArgLayout;
  private readonly jobArgs: ReturnType<typeof argsView>[];
  private readonly scratch: ReturnType<typeof argsView>;
  private readonly workerErrors: string[] = [];
  private disposed = false;
  private seq = 0;
  private readonly claimWord: BigInt64Array;

  private constructor(
    options: PoolOptions,
    workers: PlatformWorker[],
    exports: WebAssembly.Exports,
  ) {
    this.threads = options.threads;
    this.jobs = options.jobs;
    this.opCodes = new Map(options.jobs.map((job, i) => [job, i + 1]));
    this.threadScratch = options.threadScratch ?? NO_SCRATCH;
    this.workers = workers;
    this.exports = exports;
    this.ctl = new Int32Array(options.memory.buffer, CONTROL_OFFSET, CONTROL_INTS);
    this.ctlF32 = new Float32Array(options.memory.buffer, CONTROL_OFFSET, CONTROL_INTS);
    const ctlF64 = new Float64Array(options.memory.buffer, CONTROL_OFFSET, CONTROL_INTS / 2);
    this.views = { i32: this.ctl, f32: this.ctlF32, f64: ctlF64 };
    // the calling thread's (thread 0's) views of each job's arguments and of its scratch slots
    this.jobArgs = options.jobs.map((job) =>
      argsView(this.ctl, this.ctlF32, ctlF64, CONTROL.args, job.args.rows),
    );
    this.scratch = argsView(
      this.ctl,
      this.ctlF32,
      ctlF64,
      CONTROL.scratch,
      this.threadScratch.rows,
    );
    this.claimWord = new BigInt64Array(options.memory.buffer, CONTROL_OFFSET, CONTROL.claim64 + 1);
  }

  static async create(options: PoolOptions): Promise<ThreadPool> {
    const { memory, module, threads } = options;
    if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
      throw new Error(
        `wasm kernels: threads must be an integer in [1, ${MAX_THREADS}], got ${threads}`,
      );
    }
    const threadScratch = options.threadScratch ?? NO_SCRATCH;
    for (const job of options.jobs) {
      if (CONTROL.args + job.args.slots > CONTROL.scratch)
        throw new Error(`wasm kernels: job ${job.name}'s arguments overrun the control block`);
    }
    if (threadScratch.slots > SCRATCH_SLOTS)
      throw new Error(`wasm kernels: thread scratch needs more than ${SCRATCH_SLOTS} slots`);
    const ctl = new Int32Array(memory.buffer, CONTROL_OFFSET, CONTROL_INTS);
    if (Atomics.compareExchange(ctl, CONTROL.lock, 0, 1) !== 0) {
      throw new Error(
        "wasm kernels: this heap already has live wasm kernels; dispose() them first",
      );
    }
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
    const jobSources = options.jobs.map((j) => `(${j.run.toString()})`);
    const source =
      `const jobs = [${jobSources.join(", ")}];\n` +
      `(${workerMain})(port, jobs, ${chunkLoop}, ${argsView});\n`;
    const workers: PlatformWorker[] = [];
    try {
      const ready: Promise<void>[] = [];
      for (let t = 1; t < threads; t++) {
        const w = await spawnWorker(source);
        workers.push(w);
        ready.push(
          new Promise<void>((resolve, reject) => {
            w.onMessage((m) => {
              const msg = m as { ready?: number; error?: string; thread?: number };
              if (msg.ready !== undefined) resolve();
            });
            w.onError((e) =>
              reject(new Error(`wasm kernels: worker ${t} failed to start: ${e.message}`)),
            );
          }),
        );
        const init: WorkerInit = {
          module,
          memory,
          control: CONTROL,
          controlOffset: CONTROL_OFFSET,
          controlInts: CONTROL_INTS,
          thread: t,
          spinMs: options.spinMs,
          jobArgs: options.jobs.map((j) => j.args.rows),
          scratchRows: threadScratch.rows,
          scratchSlots: SCRATCH_SLOTS,
        };
        w.post(init);
      }
      await Promise.all(ready);
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      Atomics.store(ctl, CONTROL.lock, 0);
      throw err;
    }
    const pool = new ThreadPool(options, workers, exports);
    for (const w of workers) {
      w.onMessage((m) => {
        const msg = m as { error?: string; thread?: number };
        if (msg.error !== undefined) pool.workerErrors.push(`thread ${msg.thread}: ${msg.error}`);
      });
    }
    return pool;
  }

  /** Writes thread t's scratch slots (PoolOptions.threadScratch layout). */
  setThreadScratch(thread: number, values: ArgValues<ArgSpec>): void {
    writeArgs(this.views, CONTROL.scratch + SCRATCH_SLOTS * thread, this.threadScratch, values);
  }

  /**
   * Runs `job` (one of PoolOptions.jobs) with arguments `values` (written into the control block:
   * prepare(), then run(), see there for nthreads and chunks).
   */
  dispatch<S extends ArgSpec, T extends ArgSpec>(
    job: PoolJob<S, T>,
    values: ArgValues<S>,
    nthreads: number,
    chunks: number,
  ): void {
    const op = this.opCodes.get(job as unknown as AnyPoolJob);
    if (op === undefined) throw new Error(`wasm kernels: job ${job.name} is not in this pool`);
    this.prepare();
    writeArgs(this.views, CONTROL.args, job.args, values);
    this.run(op, nthreads, chunks);
  }

  /** Marks the job arguments as being written; call before writing them, then run(). */
  prepare(): void {
    if (this.disposed) throw new Error("wasm kernels: used after dispose()");
    this.seq = (this.seq + 1) % 0x7fffffff;
    Atomics.store(this.claimWord, CONTROL.claim64, (BigInt(this.seq) << 32n) | LOCKED);
  }

  /**
   * Runs job `op` (1-based) split into `chunks` chunks on up to `nthreads` threads (1 = the caller
   * only, no dispatch), with the arguments written since prepare(). Returns when every chunk is
   * done; rethrows the first failure.
   */
  run(op: number, nthreads: number, chunks: number): void {
    if (this.disposed) throw new Error("wasm kernels: used after dispose()");
    const ctl = this.ctl;
    const job = this.jobs[op - 1].run as ErasedJobFunction;
    const args = this.jobArgs[op - 1];
    const scratch = this.scratch;
    const n = Math.max(1, Math.min(nthreads, this.threads));
    Atomics.store(ctl, CONTROL.error, 0);
    if (n === 1 || this.workers.length === 0 || chunks <= 1) {
      // workers never see this job: CLAIM stays locked
      let next = 0;
      job(
        this.exports,
        ctl,
        this.ctlF32,
        CONTROL,
        0,
        chunkLoop(
          ctl,
          CONTROL.error,
          0,
          () => (next < chunks ? next++ : -1),
          () => {},
        ),
        args,
        scratch,
      );
      return;
    }
    Atomics.store(ctl, CONTROL.op, op);
    Atomics.store(ctl, CONTROL.chunks, chunks);
    Atomics.store(ctl, CONTROL.nthreads, n);
    Atomics.store(ctl, CONTROL.finished, 0);
    const seq = BigInt(this.seq) << 32n;
    Atomics.store(this.claimWord, CONTROL.claim64, seq);
    Atomics.add(ctl, CONTROL.gen, 1);
    if (Atomics.load(ctl, CONTROL.sleeping) > 0) Atomics.notify(ctl, CONTROL.gen);
    const claimWord = this.claimWord;
    const claim = (): number => {
      for (;;) {
        const w = Atomics.load(claimWord, CONTROL.claim64);
        const index = Number(w & 0xffffffffn);
        if (w - BigInt(index) !== seq || index >= chunks) return -1;
        if (Atomics.compareExchange(claimWord, CONTROL.claim64, w, w + 1n) === w) return index;
      }
    };
    let failure: unknown = null;
    try {
      const finish = (): void => {
        Atomics.add(ctl, CONTROL.finished, 1);
      };
      job(
        this.exports,
        ctl,
        this.ctlF32,
        CONTROL,
        0,
        chunkLoop(ctl, CONTROL.error, 0, claim, finish),
        args,
        scratch,
      );
    } catch (err) {
      failure = err;
    }
    // The other threads are finishing their last chunks: spin for a while (they usually end
    // within a chunk's time), then sleep in Atomics.wait until a worker's finish() notifies.
    // Why sleep: on a machine whose cores are busy with other work, a worker holding the last
    // chunk may be waiting for a core; a caller spinning on its own core delays it by a whole
    // scheduler time slice (docs/engine-notes.md, "Thread pool"). No wake-up is lost:
    // a finish() before the flag store changes FINISHED, so the wait returns at once; the
    // timeout is only a safety bound.
    const spinUntil = performance.now() + CALLER_SPIN_MS;
    let spins = 0;
    for (;;) {
      const done = Atomics.load(ctl, CONTROL.finished);
      if (done >= chunks) break;
      if (!CALLER_CAN_WAIT || (++spins & 0xff) !== 0 || performance.now() < spinUntil) continue;
      Atomics.store(ctl, CONTROL.callerWaiting, 1);
      Atomics.wait(ctl, CONTROL.finished, done, CALLER_WAIT_MS);
      Atomics.store(ctl, CONTROL.callerWaiting, 0);
    }
    if (failure !== null) throw failure;
    const bad = Atomics.load(ctl, CONTROL.error);
    if (bad !== 0) {
      throw new Error(
        `wasm kernels: job ${op} failed in worker thread ${bad - 1} ${this.workerErrors.join("; ")}`,
      );
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.claimWord, CONTROL.claim64, (BigInt(this.seq + 1) << 32n) | LOCKED);
    Atomics.store(this.ctl, CONTROL.op, OP_EXIT);
    Atomics.add(this.ctl, CONTROL.gen, 1);
    Atomics.notify(this.ctl, CONTROL.gen);
    await Promise.all(this.workers.map((w) => w.terminate()));
    Atomics.store(this.ctl, CONTROL.lock, 0);
  }
}
