// The per-thread GEMM loop nest (Goto/BLIS blocking: blocks of at most MC rows x NC columns,
// KC-row slices of the inner dim inside) around the generated pack / macro-kernel functions
// (gemm.ts).
// One call runs this thread's share of the job described in the control block (pool.ts layout,
// GEMM_ARG offsets below).
//
// CONTRACT: gemmThreadJob must stay self-contained (no reference to anything outside its body,
// no imports, no helpers): worker threads receive it as source text via Function.prototype
// .toString() (pool.ts). Everything it needs arrives through its parameters.
//
// Work split: chunks of (batch entry, NC columns, a row block of at most MC rows) handed out by
// the pool (forEachChunk); chunks never share an element of C, so no other synchronisation is
// needed inside a job. Row groups: with G groups (G divides the row blocks; the host passes the thread
// count when it does), chunk i of a (batch entry, NC columns) block runs row block
// (i % G) * (blocks / G) + floor(i / G), so threads that claim in step each walk their own
// contiguous range of rows. Measured (Zen 4 VM, 2 threads, medians of back-to-back runs):
// 1024^3 97-105 -> 102-109 GFLOP/s, training-step shapes +2-7% (index.ts, "Cache blocking").
// Traces of the plain order (block i to whichever thread claims it, so in step thread A got the
// even blocks and B the odd ones) showed two losses: the odd blocks held all the extra tiles
// (87 of 171 row tiles against 84), and the thread on the odd blocks ran its 14-tile blocks
// ~10% slower than the other ran the adjacent even ones (3.5 vs 3.2 ms; alone both 3.16 ms;
// cause not found). With row groups both threads run a block in ~3.2 ms.
// Tried and dropped: one packed B block shared by the threads (each packs a share of the
// panels, compute chunks wait on an Atomics counter, two slots so the next block packs while
// the last computes). Packing B 1024 x 1024 costs each thread 0.5-0.6 ms of a 20 ms GEMM, and
// sharing moved 1024^3 +1-3% without row groups, but on top of them it was no better (1024^3
// 98.8 vs 102.4 without it, lm_head forward 1024x32000x512 NT 100 vs 107) and its waits made
// runs on the busy machine more variable (a descheduled packer stalls the other thread).
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
// fourth scratch slot. With a LoRA rank-8 term this replaces a separate K = 8 GEMM that read and
// wrote all of C for 8 multiply-adds per element.

import type { GemmExports } from "./gemm.js";
import type { GemmCausalExports } from "./gemm-causal.js";
import type { CONTROL } from "./pool.js";

/** Offsets of the GEMM arguments, in i32 slots from the control block's `args` index. */
export const GEMM_ARG = {
  m: 0,
  n: 1,
  k: 2,
  a: 3,
  b: 4,
  c: 5,
  aRs: 6,
  aCs: 7,
  bRs: 8,
  bCs: 9,
  ldc: 10,
  batch: 11,
  aBs: 12,
  bBs: 13,
  cBs: 14,
  beta: 15,
  /** f32 slot (the driver reads its bits as an i32) */
  alpha: 16,
  /** row blocks per batch entry; block i holds MR-row tiles [i*T/blocks, (i+1)*T/blocks) of T */
  rowBlocks: 17,
  kc: 18,
  nc: 19,
  /** 1: pack A blocks; 0: the micro-kernel reads A in place */
  packA: 20,
  /** 1: pack B blocks; 0: the micro-kernel reads whole B panels in place (needs bCs == 4) */
  packB: 21,
  /** rows of the register tile: selects the gemm_*_r<MR> functions (gemm.ts) */
  mr: 22,
  /** MatmulOptions.causal: 0 none, 1 maskOut, 2 lowerA, 3 upperA (see "Causal" below) */
  causal: 23,
  /** its period (the sequence length) */
  period: 24,
  /** row groups G, dividing rowBlocks (see "Work split"; 1: blocks in order) */
  rowGroups: 25,
  /** MatmulOptions.plus, the extra term (see "Plus term"): its inner dim K2 (0: none) */
  k2: 26,
  a2: 27,
  b2: 28,
  a2Rs: 29,
  a2Cs: 30,
  b2Rs: 31,
  b2Cs: 32,
  /** f32 slot, like alpha */
  alpha2: 33,
} as const;

/**
 * Runs thread `thread`'s part of the GEMM job in `ctl`. Strides in the control block are in
 * bytes; pointers are heap byte offsets (read unsigned). The thread takes chunks (one batch entry,
 * NC columns, a row block, the whole K) through the pool's `forEachChunk`, so a thread that starts
 * late or runs slow simply takes fewer chunks. A thread keeps the
 * B block (K, NC) it packed last and repacks only when a chunk needs another one; the host bounds
 * K*NC to the scratch size.
 */
export function gemmThreadJob(
  ex: GemmExports & GemmCausalExports,
  ctl: Int32Array,
  _ctlF32: Float32Array,
  layout: typeof CONTROL,
  thread: number,
  forEachChunk: (work: (chunk: number) => void) => void,
): void {
  const g = layout.args;
  // literal offsets: this body cannot reference GEMM_ARG (see CONTRACT); keep the two in step
  const M = ctl[g + 0];
  const N = ctl[g + 1];
  const K = ctl[g + 2];
  const a = ctl[g + 3] >>> 0;
  const b = ctl[g + 4] >>> 0;
  const c = ctl[g + 5] >>> 0;
  const aRs = ctl[g + 6];
  const aCs = ctl[g + 7];
  const bRs = ctl[g + 8];
  const bCs = ctl[g + 9];
  const ldc = ctl[g + 10];
  const _batch = ctl[g + 11];
  const aBs = ctl[g + 12] >>> 0;
  const bBs = ctl[g + 13] >>> 0;
  const cBs = ctl[g + 14] >>> 0;
  const beta = ctl[g + 15];
  // alpha goes to the kernels as its f32 bit pattern (an i32: see gemm.ts, register budget)
  const alpha = ctl[g + 16];
  const rowBlocks = ctl[g + 17];
  const KC = ctl[g + 18];
  const NC = ctl[g + 19];
  const packA = ctl[g + 20] !== 0;
  const packB = ctl[g + 21] !== 0;
  const MR = ctl[g + 22];
  const causal = ctl[g + 23];
  const period = ctl[g + 24];
  const G = ctl[g + 25];
  const K2 = ctl[g + 26];
  const a2 = ctl[g + 27] >>> 0;
  const b2 = ctl[g + 28] >>> 0;
  const a2Rs = ctl[g + 29];
  const a2Cs = ctl[g + 30];
  const b2Rs = ctl[g + 31];
  const b2Cs = ctl[g + 32];
  const alpha2 = ctl[g + 33];
  const packABlock = ex[`gemm_pack_a_r${MR}`];
  const macro = ex[`gemm_macro_r${MR}`];
  const NR = 8;
  const s = layout.scratch + 4 * thread;
  const ap = ctl[s] >>> 0;
  const bp = ctl[s + 1] >>> 0;
  const tile = ctl[s + 2] >>> 0;
  const b2p = ctl[s + 3] >>> 0;
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
}
