// The contract of a kernel family of the wasm engine: one module (families/<name>/) per group of
// kernels that share generated code and a worker job. A family owns its code emitter, the
// argument layouts of its jobs (declared once, args.ts), the jobs themselves and the host side:
// the Kernels methods it provides, each with its fallback rule (when it delegates to the
// reference kernels). The composition table (index.ts) emits every family's code into one
// module, gives the pool every family's jobs, allocates the scratch and assembles the methods.

import type { Kernels } from "../kernels.js";
import type { ModuleBuilder } from "./asm.js";
import type { ThreadPool } from "./pool.js";
import type { AnyPoolJob } from "./pool-job.js";

/** Engine-wide choices every family may read. */
export interface EngineConfig {
  /** Threads per kernel call, the caller included. */
  readonly threads: number;
  /** Relaxed-SIMD FMA in the GEMM micro-kernels. */
  readonly relaxed: boolean;
  /** Rows of the GEMM register tiles emitted: the main tile first (families/gemm/host.ts). */
  readonly mrs: readonly number[];
}

/** What a family's host side gets when the engine is created. */
export interface FamilyContext {
  readonly config: EngineConfig;
  /** The pool (its dispatch() runs a job, its exports are the calling thread's functions). */
  readonly pool: ThreadPool;
  /** The reference kernels, for fallbacks. */
  readonly ref: Kernels;
  /** Heap offsets of the shared scratch blocks (index.ts). */
  readonly scratch: { readonly normPartials: number };
}

/** A kernel family providing the Kernels methods K. */
export interface WasmFamily<K extends keyof Kernels> {
  readonly name: string;
  /** The Kernels methods it provides (create() returns exactly these). */
  readonly provides: readonly K[];
  /** Emits its generated functions into the engine's module (absent: it uses others'). */
  readonly emit?: (m: ModuleBuilder, config: EngineConfig) => void;
  /** Its pool jobs. */
  readonly jobs: readonly AnyPoolJob[];
  readonly create: (ctx: FamilyContext) => Pick<Kernels, K>;
}

/** Any family (the provided names erased), as the composition table lists them. */
export interface AnyFamily {
  readonly name: string;
  readonly provides: readonly (keyof Kernels)[];
  readonly emit?: (m: ModuleBuilder, config: EngineConfig) => void;
  readonly jobs: readonly AnyPoolJob[];
  readonly create: (ctx: FamilyContext) => Partial<Kernels>;
}

/** The export `name` of the module as a function; throws when no family emitted it. */
export function exported<F extends (...args: never[]) => unknown>(
  exports: WebAssembly.Exports,
  name: string,
): F {
  const f = exports[name];
  if (typeof f !== "function") throw new Error(`wasm kernels: no generated function ${name}`);
  return f as F;
}
