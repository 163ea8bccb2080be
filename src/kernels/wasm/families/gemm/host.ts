// The GEMM family, host side: the cache-blocking constants, the choice of register tile, the
// per-thread scratch sizes, and `matmul` for the wasm Kernels, which validates a product, cuts a
// long inner dim into K slices, sizes the row blocks and column blocks for the threads and
// dispatches one GEMM job (GEMM_ARGS) per slice. The per-thread loop nest is job.ts; the generated
// code emit.ts and emit-causal.ts. No fallback: every product the validation accepts runs here.

import type { Tensor } from "../../../../tensor/tensor.js";
import type { MatmulOptions } from "../../../kernels.js";
import { checkMatmul } from "../../../validate.js";
import type { EngineConfig, FamilyContext, WasmFamily } from "../../family.js";
import type { ThreadPool } from "../../pool.js";
import type { ScratchPlan } from "../../scratch.js";
import { emitGemm, GEMM_NR } from "./emit.js";
import { emitGemmCausal } from "./emit-causal.js";
import { GEMM_JOB } from "./job.js";

/** Below this many multiply-adds a matmul runs on the calling thread only. */
const PARALLEL_MIN_MACS = 1 << 18;
/**
 * Cache blocking (sized for a 32 KiB L1d and a 1 MiB L2). KC: inner-dim rows per macro-kernel
 * call (an NR x KC B panel is 8 KiB and stays in L1); MC: at most this many rows per chunk (an
 * MC x KC A block, 96 KiB, stays in L2); a thread packs a whole (K, NC) block of B at once into
 * B_SCRATCH_FLOATS, so NC = B_SCRATCH_FLOATS / K (K at most GEMM_K_SLICE), at most NC_MAX.
 * Wide plateaus around these values measured within noise (docs/engine-notes.md, "GEMM blocking").
 */
const KC = 256;
const MC_TARGET = 96;
const NC_MAX = 2048;
const B_SCRATCH_FLOATS = 1 << 20;
/**
 * Longer inner dims are cut into slices of this many (accumulated one after the other). Why not
 * longer: a thread packs a whole (K slice, NC) block of B, so NC = B_SCRATCH_FLOATS / slice, and
 * every packed A block is reused by only NC / NR B panels; slices of 4096 keep NC >= 256. The
 * price is one more read of C per slice, small next to the 4096 multiply-adds per element of C
 * that each slice does (docs/engine-notes.md, "GEMM K slices").
 */
export const GEMM_K_SLICE = B_SCRATCH_FLOATS / 256;
/**
 * Length of the K slices of a product with N columns and an inner dim longer than GEMM_K_SLICE.
 * Up to 1024 columns: short enough that a (slice, N) block of B is about 2 MiB (this L2), at least
 * 1024 rows, so one NC block spans all of N and the long operand A streams from memory once
 * instead of once per column block (docs/engine-notes.md, "GEMM K slices").
 */
const L2_BLOCK_FLOATS = 1 << 19;
function kSliceFor(n: number): number {
  const cols = Math.ceil(n / GEMM_NR) * GEMM_NR;
  if (cols > 1024) return GEMM_K_SLICE;
  return Math.min(GEMM_K_SLICE, Math.max(1024, Math.floor(L2_BLOCK_FLOATS / cols / KC) * KC));
}
/**
 * Packing pays when a packed block is reused many times. A block (MC x KC) is reused by N/NR B
 * panels: with fewer than PACK_A_MIN_N columns the micro-kernel reads A in place. A B panel is
 * reused by M/MR row tiles: with at most PACK_B_MAX_M rows (and contiguous B rows) it is read in
 * place (docs/engine-notes.md, "GEMM packing").
 */
const PACK_A_MIN_N = 64;
const PACK_B_MAX_M = 32;
/**
 * The longest inner dim of a MatmulOptions.plus term that the driver runs as one more K slice of
 * each chunk (a LoRA rank); a longer one runs as a GEMM of its own after the main product. Bounds
 * the per-thread scratch for its packed B block: PLUS_K_MAX x NC_MAX floats (1 MiB).
 */
const PLUS_K_MAX = 128;
/** GEMM_ARGS.causal codes of MatmulCausal kinds; the smallest row block a causal product uses. */
const CAUSAL_CODES = { none: 0, maskOut: 1, lowerA: 2, upperA: 3 } as const;
const CAUSAL_MC_MIN = 24;
/**
 * Micro-kernel rate of the main tile over the 4 x 8 one, in GFLOP/s measured alone
 * (docs/engine-notes.md, "GEMM tiles"): relaxed 6 x 8 vs 4 x 8, plain 5 x 8 vs 4 x 8.
 */
const TILE_SPEEDUP_RELAXED = 57.8 / 53.6;
const TILE_SPEEDUP_PLAIN = 47.2 / 42.3;

/** Below this inner dim the 4 x 8 tile is used (see pickTileRows). */
const MAIN_TILE_MIN_K = 32;

/**
 * Rows of the register tile for an (m, n, k) product: the main tile unless 4-row tiles, slower
 * per tile, lose less to the rows past m that the last tile computes for nothing (time ~ rows
 * computed / rate), or k is tiny (below MAIN_TILE_MIN_K the 4 x 8 tile measured faster:
 * docs/engine-notes.md, "GEMM tiles").
 */
function pickTileRows(m: number, k: number, main: number, speedup: number): number {
  if (k < MAIN_TILE_MIN_K) return 4;
  return Math.ceil(m / 4) * 4 * speedup < Math.ceil(m / main) * main ? 4 : main;
}

/**
 * Bytes of each thread's GEMM scratch (THREAD_SCRATCH, scratch.ts) for register tiles of `mrs`
 * rows: aBlock (MC_TARGET, KC) + the slack gemm_pack_a may write (emit.ts), bBlock (K, NC) <=
 * B_SCRATCH_FLOATS, tile (max MR, NR), b2Block (PLUS_K_MAX, NC_MAX) for a plus term.
 */
export function gemmThreadScratch(mrs: readonly number[]): ScratchPlan<never>["perThread"] {
  return {
    aBlock: MC_TARGET * KC * 4 + 16,
    bBlock: B_SCRATCH_FLOATS * 4,
    tile: Math.max(...mrs) * GEMM_NR * 4,
    b2Block: PLUS_K_MAX * NC_MAX * 4,
  };
}

/** MatmulOptions.plus as the driver takes it: heap byte offsets, byte strides (GEMM_ARGS a2..). */
interface PlusTerm {
  k: number;
  a: number;
  b: number;
  aRs: number;
  aCs: number;
  bRs: number;
  bCs: number;
  alpha: number;
}

/**
 * The wasm Kernels' matmul over `pool`: `threads` threads at most, register tiles mrs[0] x 8 (or
 * 4 x 8, pickTileRows), relaxed-SIMD tile rates when `relaxed`.
 */
function createMatmul(
  pool: ThreadPool,
  { threads, relaxed, mrs }: EngineConfig,
): (out: Tensor, a: Tensor, b: Tensor, opts?: MatmulOptions) => void {
  const mrMain = mrs[0];
  function matmul(out: Tensor, a: Tensor, b: Tensor, opts: MatmulOptions = {}): void {
    const shape = checkMatmul(out, a, b, opts);
    const transA = opts.transA === true;
    const transB = opts.transB === true;
    const accumulate = opts.accumulate === true;
    const alpha = opts.alpha ?? 1;
    let { batch, m } = shape;
    const { n, k, bBatched, k2 } = shape;
    if (batch === 0 || m === 0 || n === 0) return;
    // a shared b with a plain a is one GEMM over all batch rows: (batch*M, K) x (K, N)
    if (!bBatched && !transA) {
      m *= batch;
      batch = 1;
    }
    // the plus term (checkMatmul: only with batch 1 here): fused as the last K slice, or alone
    const plus = opts.plus;
    const term: PlusTerm | null =
      plus === undefined || k2 === 0
        ? null
        : {
            k: k2,
            a: plus.a.ptr,
            b: plus.b.ptr,
            aRs: plus.transA === true ? 4 : 4 * k2,
            aCs: plus.transA === true ? 4 * m : 4,
            bRs: plus.transB === true ? 4 : 4 * n,
            bCs: plus.transB === true ? 4 * k2 : 4,
            alpha: plus.alpha ?? 1,
          };
    if (k === 0) {
      if (term !== null) runTermAlone(term, accumulate);
      else if (!accumulate) out.fill(0);
      return;
    }
    const aRs = transA ? 4 : 4 * k;
    const aCs = transA ? 4 * m : 4;
    const bRs = transB ? 4 : 4 * n;
    const bCs = transB ? 4 * k : 4;
    // causal structure (kernels.ts MatmulCausal): lowerA / upperA only promise zeros, so a sliced
    // inner dim may simply run the full product; maskOut must mask every slice (idempotent)
    let causal: number = CAUSAL_CODES[opts.causal?.kind ?? "none"];
    if (causal !== CAUSAL_CODES.maskOut && k > GEMM_K_SLICE) causal = 0;
    const period = opts.causal?.period ?? 1;
    // an inner dim longer than GEMM_K_SLICE runs as several GEMMs (slices of kSliceFor(n)), each
    // accumulating onto the last; a plus term rides on the last one
    const fuse = term !== null && term.k <= PLUS_K_MAX;
    const sliceLen = k <= GEMM_K_SLICE ? k : kSliceFor(n);
    for (let p0 = 0; p0 < k; p0 += sliceLen) {
      const kSlice = Math.min(sliceLen, k - p0);
      const last = p0 + kSlice >= k;
      runGemm(
        { m, n, k: kSlice, batch, alpha, accumulate: accumulate || p0 > 0, causal, period },
        a.ptr + p0 * aCs,
        b.ptr + p0 * bRs,
        out.ptr,
        { aRs, aCs, bRs, bCs, aBs: 4 * m * k, bBs: bBatched ? 4 * k * n : 0 },
        fuse && last ? term : null,
      );
    }
    if (term !== null && !fuse) runTermAlone(term, true);

    /** The plus term as a GEMM of its own onto out (k === 0, or its K2 too long to fuse). */
    function runTermAlone(t: PlusTerm, acc: boolean): void {
      runGemm(
        { m, n, k: t.k, batch: 1, alpha: t.alpha, accumulate: acc, causal: 0, period: 1 },
        t.a,
        t.b,
        out.ptr,
        { aRs: t.aRs, aCs: t.aCs, bRs: t.bRs, bCs: t.bCs, aBs: 0, bBs: 0 },
        null,
      );
    }
  }

  function runGemm(
    d: {
      m: number;
      n: number;
      k: number;
      batch: number;
      alpha: number;
      accumulate: boolean;
      causal: number;
      period: number;
    },
    aPtr: number,
    bPtr: number,
    cPtr: number,
    st: { aRs: number; aCs: number; bRs: number; bCs: number; aBs: number; bBs: number },
    term: PlusTerm | null,
  ): void {
    const { m, n, k, batch } = d;
    const macs = batch * m * n * (k + (term?.k ?? 0));
    const nthreads = macs < PARALLEL_MIN_MACS ? 1 : threads;
    // Row blocks: each at most the scratch's mc rows, cut on MR-row tile boundaries as evenly as
    // possible (the driver spreads the tiles over the blocks), and on several threads a multiple
    // of the thread count, so that no thread is left alone with the last block while the others
    // idle (1024 rows in blocks of 96 are 11 blocks: 6 for one thread, 5 for the other, a 1.83x
    // ceiling on 2 threads; 12 blocks of 84-88 rows split evenly)
    const mr = pickTileRows(m, k, mrMain, relaxed ? TILE_SPEEDUP_RELAXED : TILE_SPEEDUP_PLAIN);
    // causal products skip work per row block: smaller blocks (about an eighth of a period) skip more
    const mcRows =
      d.causal === 0
        ? MC_TARGET
        : Math.min(MC_TARGET, Math.max(CAUSAL_MC_MIN, Math.ceil(d.period / 8)));
    const mc = Math.max(mr, Math.floor(mcRows / mr) * mr);
    const tiles = Math.ceil(m / mr);
    let rowBlocks = Math.ceil(tiles / (mc / mr));
    if (nthreads > 1 && batch === 1)
      rowBlocks = Math.min(tiles, Math.ceil(rowBlocks / nthreads) * nthreads);
    // NC: as wide as the scratch allows, but narrow enough for ~4 chunks per thread
    let nc = Math.min(NC_MAX, Math.floor(B_SCRATCH_FLOATS / k / GEMM_NR) * GEMM_NR);
    const rowChunks = batch * rowBlocks;
    if (nthreads > 1 && rowChunks < 4 * nthreads) {
      const colChunks = Math.ceil((4 * nthreads) / rowChunks);
      nc = Math.min(nc, Math.max(8 * GEMM_NR, Math.ceil(n / colChunks / GEMM_NR) * GEMM_NR));
    }
    pool.dispatch(
      GEMM_JOB,
      {
        m,
        n,
        k,
        a: aPtr,
        b: bPtr,
        c: cPtr,
        ...st,
        ldc: 4 * n,
        cBs: 4 * m * n,
        beta: d.accumulate ? 1 : 0,
        alpha: d.alpha,
        rowBlocks,
        kc: KC,
        nc,
        // packing an A block pays off only when many B panels reuse it
        packA: n >= PACK_A_MIN_N,
        // likewise B, when few row tiles reuse it and its rows are contiguous
        packB: !(st.bCs === 4 && m <= PACK_B_MAX_M),
        mr,
        causal: d.causal,
        period: d.period,
        // threads that claim in step take row blocks from separate contiguous groups (job.ts)
        rowGroups: rowBlocks % nthreads === 0 ? nthreads : 1,
        k2: term?.k ?? 0,
        a2: term?.a ?? 0,
        b2: term?.b ?? 0,
        a2Rs: term?.aRs ?? 0,
        a2Cs: term?.aCs ?? 0,
        b2Rs: term?.bRs ?? 0,
        b2Cs: term?.bCs ?? 0,
        alpha2: term?.alpha ?? 0,
      },
      nthreads,
      rowChunks * Math.ceil(n / nc),
    );
  }

  return matmul;
}

/** The GEMM family: matmul. Its per-thread scratch: gemmThreadScratch. */
export const gemmFamily: WasmFamily<"matmul"> = {
  name: "gemm",
  provides: ["matmul"],
  emit: (m, { relaxed, mrs }) => {
    emitGemm(m, { relaxed, mrs });
    emitGemmCausal(m);
  },
  jobs: [GEMM_JOB],
  create: ({ pool, config }: FamilyContext) => ({ matmul: createMatmul(pool, config) }),
};
