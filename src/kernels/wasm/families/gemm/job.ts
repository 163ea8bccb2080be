// The GEMM job: its argument layout (GEMM_ARGS) and the per-thread loop nest (Goto/BLIS
// blocking: blocks of at most MC rows x NC columns, KC-row slices of the inner dim inside) around
// the generated pack / macro-kernel functions (emit.ts). One call runs this thread's share of the
// job; the job is shipped to the workers as source text (pool.ts), so its body references
// nothing outside itself: everything arrives through its parameters.
//
// Work split: chunks of (batch entry, NC columns, a row block of at most MC rows) handed out by
// the pool (forEachChunk); chunks never share an element of C, so no other synchronisation is
// needed inside a job. Row groups: with G groups (G divides the row blocks; the host passes the
// thread count when it does), chunk i of a (batch entry, NC columns) block runs row block
// (i % G) * (blocks / G) + floor(i / G), so threads that claim in step each walk their own
// contiguous range of rows instead of alternating blocks (measurements, and a shared packed B
// block that was tried and dropped: docs/engine-notes.md, "GEMM work split").
//
// Causal (MatmulOptions.causal, kernels.ts), decided per row block [ic, ic + mc) of C: when the
// block lies inside one period, rows i have query indices iq in [ic mod P, (ic + mc - 1) mod P], and
// - maskOut computes only columns j <= the largest iq, then gemm_mask_causal zeroes every element
//   above the diagonal in the chunk (also the columns it did not compute);
// - lowerA runs k over [0, largest iq] only (op(a) is zero beyond it for every row of the block);
// - upperA skips, in each period h of K, k in [h*P, h*P + smallest iq) (zero for every row).
// A block that straddles two periods runs the full product (still exact: the skipped terms are
// zeros by the caller's guarantee; only maskOut's zeroing is needed for correctness).
//
// Plus term (MatmulOptions.plus, kernels.ts): after a chunk's K slices, one more slice of K2 rows
// (K2 <= the host's PLUS_K_MAX) from a second (a2, b2) pair, with its own strides and alpha2, while
// that block of C is still in cache. Its B block (K2, NC) is always packed, into the thread's
// b2Block scratch. With a LoRA rank-8 term this replaces a separate K = 8 GEMM that read and
// wrote all of C for 8 multiply-adds per element.

import { defineArgs } from "../../args.js";
import type { JobFunction, PoolJob } from "../../pool-job.js";
import type { ThreadScratchSpec } from "../../scratch.js";
import type { GemmExports } from "./emit.js";
import type { GemmCausalExports } from "./emit-causal.js";

/**
 * One GEMM job: C (batch, M, N) = alpha op(A) op(B) (+ C when beta), strides in bytes:
 * op(a)[i, p] at a + i aRs + p aCs, op(b)[p, j] at b + p bRs + j bCs, C rows ldc apart.
 */
const GEMM_ARGS = defineArgs({
  m: "i32",
  n: "i32",
  k: "i32",
  a: "ptr",
  b: "ptr",
  c: "ptr",
  aRs: "i32",
  aCs: "i32",
  bRs: "i32",
  bCs: "i32",
  /** batch strides in bytes (bBs 0: b shared by the batch entries) */
  aBs: "u32",
  bBs: "u32",
  /** C's row stride in bytes, and its batch stride */
  ldc: "i32",
  cBs: "u32",
  /** 1: add to C; 0: overwrite it */
  beta: "i32",
  /** the kernels take alpha as its f32 bit pattern in an i32 (emit.ts, register budget) */
  alpha: "f32bits",
  /** row blocks per batch entry; block i holds MR-row tiles [i*T/blocks, (i+1)*T/blocks) of T */
  rowBlocks: "i32",
  kc: "i32",
  nc: "i32",
  /** pack A blocks (else the micro-kernel reads A in place) */
  packA: "bool",
  /** pack B blocks (else the micro-kernel reads whole B panels in place: needs bCs == 4) */
  packB: "bool",
  /** rows of the register tile: selects the gemm_*_r<MR> functions (emit.ts) */
  mr: "i32",
  /** MatmulOptions.causal: 0 none, 1 maskOut, 2 lowerA, 3 upperA (see "Causal" above) */
  causal: "i32",
  /** its period (the sequence length) */
  period: "i32",
  /** row groups G, dividing rowBlocks (see "Work split"; 1: blocks in order) */
  rowGroups: "i32",
  /** MatmulOptions.plus, the extra term (see "Plus term"): its inner dim K2 (0: none) */
  k2: "i32",
  a2: "ptr",
  b2: "ptr",
  a2Rs: "i32",
  a2Cs: "i32",
  b2Rs: "i32",
  b2Cs: "i32",
  alpha2: "f32bits",
});
type Spec = typeof GEMM_ARGS.spec;

/**
 * Runs thread `thread`'s part of a GEMM job. Pointers are heap byte offsets. The thread takes
 * chunks (one batch entry, NC columns, a row block, the whole K) through the pool's
 * `forEachChunk`, so a thread that starts late or runs slow simply takes fewer chunks. A thread
 * keeps the B block (K, NC) it packed last and repacks only when a chunk needs another one; the
 * host bounds K*NC to the scratch size. Self-contained (shipped as source).
 */
const gemmThreadJob: JobFunction<Spec, ThreadScratchSpec> = (
  ex: GemmExports & GemmCausalExports,
  _ctl,
  _ctlF32,
  _layout,
  _thread,
  forEachChunk,
  args,
  scratch,
) => {
  const { m: M, n: N, k: K, a, b, c, aRs, aCs, bRs, bCs, ldc, aBs, bBs, cBs, beta } = args;
  const { alpha, rowBlocks, kc: KC, nc: NC, packA, packB, mr: MR, causal, period } = args;
  const { rowGroups: G, k2: K2, a2, b2, a2Rs, a2Cs, b2Rs, b2Cs, alpha2 } = args;
  const packABlock = ex[`gemm_pack_a_r${MR}`];
  const macro = ex[`gemm_macro_r${MR}`];
  const NR = 8;
  const { aBlock: ap, bBlock: bp, tile, b2Block: b2p } = scratch;
  const bpStride = K * NR * 4; // one packed B panel holds all K rows

  const icBlocks = rowBlocks;
  const rowTiles = Math.ceil(M / MR);
  const jcBlocks = Math.ceil(N / NC);
  const perBatch = icBlocks * jcBlocks;
  let packedKey = -1; // which (batch entry, jc block) of B sits in this thread's bp
  let packed2Key = -1; // which jc block of b2 sits in b2p
  forEachChunk(runChunk);

  function runChunk(chunk: number): void {
    const bi = Math.floor(chunk / perBatch);
    const rest = chunk - bi * perBatch;
    const jcIdx = Math.floor(rest / icBlocks);
    const i = rest - jcIdx * icBlocks;
    const icIdx = (i % G) * (icBlocks / G) + Math.floor(i / G);
    const jc = jcIdx * NC;
    const nc = Math.min(NC, N - jc);
    // block icIdx: tiles [icIdx*T/blocks, (icIdx+1)*T/blocks), at most the Ap scratch's rows
    const ic = MR * Math.floor((icIdx * rowTiles) / rowBlocks);
    const mc = Math.min(M, MR * Math.floor(((icIdx + 1) * rowTiles) / rowBlocks)) - ic;
    const aChunk = a + bi * aBs + ic * aRs;
    const cChunk = c + bi * cBs + ic * ldc + jc * 4;
    // B in place covers the whole NR-column panels; a last partial panel is always packed
    const ncInPlace = packB ? 0 : nc - (nc % NR);
    const ncPacked = nc - ncInPlace;
    const key = bBs !== 0 ? bi * jcBlocks + jcIdx : jcIdx;
    if (ncPacked > 0 && key !== packedKey) {
      ex.gemm_pack_b(b + bi * bBs + (jc + ncInPlace) * bCs, bRs, bCs, K, ncPacked, bp);
      packedKey = key;
    }
    // causal limits of this block (see the header): columns computed, k ranges
    const single = causal !== 0 && Math.floor(ic / period) === Math.floor((ic + mc - 1) / period);
    const iqLo = ic % period;
    const iqHi = (ic + mc - 1) % period;
    let ncNeeded = nc;
    if (causal === 1 && single) ncNeeded = Math.max(0, Math.min(nc, iqHi + 1 - jc));
    const inPlaceNow = Math.min(ncInPlace, ncNeeded);
    const packedNow = Math.max(0, ncNeeded - ncInPlace);
    let first = true; // the first k slice applies beta, later ones accumulate
    // the A operand of one k slice (kc columns at src, strides rs, cs): packed into ap, or in place
    let aBlock = 0;
    let aRsNow = 0;
    let aKsNow = 0;
    const loadA = (src: number, rs: number, cs: number, kc: number): void => {
      if (packA) {
        packABlock(src, rs, cs, mc, kc, ap);
        aBlock = ap;
        aRsNow = 0;
        aKsNow = 0;
      } else {
        aBlock = src;
        aRsNow = rs;
        aKsNow = cs;
      }
    };
    const runRange = (k0: number, k1: number): void => {
      for (let pc = k0; pc < k1; pc += KC) {
        const kc = Math.min(KC, k1 - pc);
        const betaNow = first ? beta : 1;
        first = false;
        loadA(aChunk + pc * aCs, aRs, aCs, kc);
        if (inPlaceNow > 0) {
          const bBlock = b + bi * bBs + pc * bRs + jc * bCs;
          macro(
            mc,
            inPlaceNow,
            kc,
            aBlock,
            aRsNow,
            aKsNow,
            bBlock,
            bRs,
            NR * 4,
            cChunk,
            ldc,
            alpha,
            betaNow,
            tile,
          );
        }
        if (packedNow > 0) {
          const cPart = cChunk + ncInPlace * 4;
          const bBlock = bp + pc * NR * 4;
          macro(
            mc,
            packedNow,
            kc,
            aBlock,
            aRsNow,
            aKsNow,
            bBlock,
            NR * 4,
            bpStride,
            cPart,
            ldc,
            alpha,
            betaNow,
            tile,
          );
        }
      }
    };
    if (ncNeeded > 0) {
      if (causal === 2 && single) runRange(0, Math.min(K, iqHi + 1));
      else if (causal === 3 && single && iqLo > 0) {
        for (let h = 0; h < K; h += period) runRange(h + iqLo, Math.min(K, h + period));
      } else runRange(0, K);
    }
    if (K2 > 0) {
      // the plus term: one more K slice (no batch, no causal: the host's rules)
      if (jcIdx !== packed2Key) {
        ex.gemm_pack_b(b2 + jc * b2Cs, b2Rs, b2Cs, K2, nc, b2p);
        packed2Key = jcIdx;
      }
      loadA(a2 + ic * a2Rs, a2Rs, a2Cs, K2);
      macro(
        mc,
        nc,
        K2,
        aBlock,
        aRsNow,
        aKsNow,
        b2p,
        NR * 4,
        K2 * NR * 4,
        cChunk,
        ldc,
        alpha2,
        first ? beta : 1,
        tile,
      );
    }
    if (causal === 1) ex.gemm_mask_causal(cChunk, ldc, mc, ic, period, jc, nc);
  }
};

export const GEMM_JOB: PoolJob<Spec, ThreadScratchSpec> = {
  name: "gemm",
  args: GEMM_ARGS,
  run: gemmThreadJob,
};
