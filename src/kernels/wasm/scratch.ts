// Scratch memory of the wasm engine: each thread's scratch blocks, whose heap offsets sit in the
// thread's scratch slots of the control block (THREAD_SCRATCH layout, decoded for every job), and
// blocks shared by the calling thread's host code. Sizes come from the families that use them
// (the composition table, index.ts); this module only allocates, records and frees.
//
// Must never: allocate after creation (the hot loop allocates nothing), or keep a block alive
// after free().

import type { Heap } from "../../tensor/heap.js";
import { defineArgs } from "./args.js";
import type { ThreadPool } from "./pool.js";

/**
 * Each thread's scratch pointers, in this order (one slot each):
 *   aBlock  the GEMM's packed A block (families/gemm)
 *   bBlock  the GEMM's packed B block
 *   tile    an edge tile of C for the GEMM; the cross-entropy job's row statistics
 *   b2Block the packed B block of a GEMM plus term
 */
export const THREAD_SCRATCH = defineArgs({
  aBlock: "ptr",
  bBlock: "ptr",
  tile: "ptr",
  b2Block: "ptr",
});
export type ThreadScratchSpec = typeof THREAD_SCRATCH.spec;
type ThreadScratchName = keyof ThreadScratchSpec;

export interface ScratchPlan<Shared extends string> {
  /** Bytes of each thread's blocks (allocated per thread, in THREAD_SCRATCH order). */
  perThread: { readonly [K in ThreadScratchName]: number };
  /** Bytes of each shared block (allocated after the threads' blocks). */
  shared: { readonly [K in Shared]: number };
}

export interface Scratch<Shared extends string> {
  /** Heap offsets of the shared blocks. */
  shared: { readonly [K in Shared]: number };
  /** Frees every block. */
  free(): void;
}

/**
 * Allocates the plan's blocks (thread 0's, thread 1's, ..., then the shared ones) and writes each
 * thread's pointers into its scratch slots. On failure frees what it took and rethrows.
 */
export function allocScratch<Shared extends string>(
  heap: Heap,
  pool: ThreadPool,
  plan: ScratchPlan<Shared>,
): Scratch<Shared> {
  const blocks: number[] = [];
  const take = (bytes: number): number => {
    const p = heap.alloc(bytes);
    blocks.push(p);
    return p;
  };
  const free = (): void => {
    for (const p of blocks) heap.free(p);
    blocks.length = 0;
  };
  try {
    const names = Object.keys(THREAD_SCRATCH.spec) as ThreadScratchName[];
    for (let t = 0; t < pool.threads; t++) {
      const slots = {} as { [K in ThreadScratchName]: number };
      for (const name of names) slots[name] = take(plan.perThread[name]);
      pool.setThreadScratch(t, slots);
    }
    const shared = {} as { [K in Shared]: number };
    for (const name of Object.keys(plan.shared) as Shared[]) shared[name] = take(plan.shared[name]);
    return { shared, free };
  } catch (err) {
    free();
    throw err;
  }
}
