// What a pool job is (pool.ts runs them): a function run by every thread that takes part, with
// its arguments decoded from a declared layout (args.ts). Types only.

import type { ArgLayout, ArgSpec, Args, argsView } from "./args.js";
import type { CONTROL } from "./pool.js";

/**
 * A job: runs thread `thread`'s part of a job by handing its per-chunk work to forEachChunk, which
 * calls it with every chunk index this thread claims. `args` are the job's arguments decoded from
 * its layout (S), `scratch` this thread's scratch pointers (layout T); `ctl` and `layout` give the
 * raw control block (for the pool's own tests). Jobs are shipped to workers as source text:
 * self-contained, no imports or outer references.
 */
export type JobFunction<S extends ArgSpec = ArgSpec, T extends ArgSpec = ArgSpec> = (
  // biome-ignore lint/suspicious/noExplicitAny: wasm exports are untyped at this boundary
  ex: any,
  ctl: Int32Array,
  ctlF32: Float32Array,
  layout: typeof CONTROL,
  thread: number,
  forEachChunk: (work: (chunk: number) => void) => void,
  args: Args<S>,
  scratch: Args<T>,
) => void;

/** A job as the pool takes it: its function and the layout of its arguments. */
export interface PoolJob<S extends ArgSpec = ArgSpec, T extends ArgSpec = ArgSpec> {
  readonly name: string;
  readonly args: ArgLayout<S>;
  readonly run: JobFunction<S, T>;
}

/** A job function with its argument types erased (the pool only moves the arguments). */
export type ErasedJobFunction = (
  ex: WebAssembly.Exports,
  ctl: Int32Array,
  ctlF32: Float32Array,
  layout: typeof CONTROL,
  thread: number,
  forEachChunk: (work: (chunk: number) => void) => void,
  args: ReturnType<typeof argsView>,
  scratch: ReturnType<typeof argsView>,
) => void;

/** Any PoolJob (its argument types erased: the pool only moves them). */
export interface AnyPoolJob {
  readonly name: string;
  readonly args: ArgLayout;
  readonly run: (...params: never[]) => void;
}
