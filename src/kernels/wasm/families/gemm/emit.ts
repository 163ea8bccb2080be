// Code generation of the GEMM building blocks (Goto/BLIS structure: pack, macro-kernel,
// register-blocked micro-kernel), emitted as WebAssembly SIMD128 functions into a ModuleBuilder.
// The loops around them (blocking over N, K, M and the split over threads) live in job.ts.
//
// Reference: K. Goto, R. van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
// ACM TOMS 34(3), 2008; F. Van Zee, R. van de Geijn, "BLIS", ACM TOMS 41(3), 2015.
//
// Packed layouts (f32, zero-padded at the edges so every tile is full):
//   A block (mc, kc) -> panels of MR rows:  Ap[p][k][r] = A[p*MR + r, k]     (ceil(mc/MR), kc, MR)
//   B block (kc, nc) -> panels of NR cols:  Bp[q][k][j] = B[k, q*NR + j]     (ceil(nc/NR), kc, NR)
// The micro-kernel keeps an MR x NR tile of C in MR*NR/4 v128 registers and, per k, broadcasts
// MR values of A against two vectors of B (an outer product). Register budget: V8 (Node 20,
// V8 11.3, x64) allocates xmm0-14 (xmm15 is its scratch). Two things decide whether a tile fits
// (read with `node --experimental-wasm-relaxed-simd --no-liftoff --print-wasm-code`):
//  - nothing else may live in an xmm register across the k loop. alpha passed as an f32 param
//    sits in an xmm register for the whole loop, so it arrives as its f32 bit pattern in an i32
//    (a GPR) and is splatted with i32x4.splat after the loop;
//  - the order V8's scheduler gives the loop body depends on how the accumulators are used
//    after the loop: with the epilogue walking rows 0..MR-1 it issued all MR broadcasts before
//    the FMAs (MR + 2 + 2*MR registers), with rows MR-1..0 it keeps each broadcast next to its
//    two FMAs, reusing one register (1 + 2 + 2*MR).
// So MR = 6 with relaxed_madd (12 accumulators + 2 B vectors + 1 broadcast = 15 registers), and
// MR = 5 with plain mul + add (which needs one more temporary); the measured tile rates, and the
// shapes tried, are in docs/engine-notes.md ("GEMM tiles"). The module also carries a 4 x 8 set,
// which the host picks for few rows or a tiny inner dim (host.ts, pickTileRows).
// A 6-lane A panel is packed with vector loads too (transpose: 4 lanes + a pair stored with
// overlapping 16-byte stores; contiguous: 16 + 8 bytes per k): a scalar copy lost the 6 x 8
// tile's gain on products with few B panels per A block.
//
// Strides are in BYTES everywhere in this file (rs: to the next row, cs: to the next column).

import type { FunctionBuilder, Local, ModuleBuilder } from "../../asm.js";

export const GEMM_NR = 8;

export interface GemmCodegenOptions {
  /** Use f32x4.relaxed_madd (fused or not, as the hardware prefers). */
  relaxed: boolean;
  /**
   * Rows of the register tiles to emit (one set of micro-kernels, macro-kernel and A packing per
   * value, names suffixed _r<MR>): 6 with relaxed, 5 without (see the register budget above),
   * plus 4 for products with few rows (tile rows past M are wasted work).
   */
  mrs: readonly number[];
}

type MacroKernel = (
  mc: number,
  nc: number,
  kc: number,
  a: number,
  aRs: number,
  aKs: number,
  bp: number,
  bKs: number,
  bpStride: number,
  c: number,
  ldc: number,
  alpha: number,
  beta: number,
  tile: number,
) => void;
type PackA = (src: number, rs: number, cs: number, mc: number, kc: number, dst: number) => void;

/**
 * Names of the exported GEMM functions (see emitGemm). alpha (macro- and micro-kernels): the
 * f32's bit pattern as an i32 (see the header). Also exported, unused from JS: gemm_micro_r<MR>
 * (kc, ap, bp, c, ldcBytes, alpha, beta), one full MR x NR tile C = alpha*Ap.Bp (+ C if beta).
 */
export interface GemmExports {
  /**
   * (mc, nc, kc, a, aRs, aKs, b, bKs, bpStride, c, ldcBytes, alpha, beta, tile): C block (mc, nc)
   * from A either packed (aRs = 0: MR-row panels at a) or read in place (row i at a + i*aRs, aKs
   * bytes per k), and B panels bpStride bytes apart, NR floats per k, bKs bytes apart (NR*4 when
   * packed; in place the caller guarantees whole panels).
   */
  [name: `gemm_macro_r${number}`]: MacroKernel;
  /**
   * (src, rsBytes, csBytes, mc, kc, dst) packs an (mc, kc) block of A into MR-row panels. With
   * MR % 4 == 2 it may write up to 8 bytes past the packed block: dst needs that much slack.
   */
  [name: `gemm_pack_a_r${number}`]: PackA;
  /** (src, rsBytes, csBytes, kc, nc, dst) packs a (kc, nc) block of B into NR-column panels. */
  gemm_pack_b(src: number, rs: number, cs: number, kc: number, nc: number, dst: number): void;
}

/** Emits gemm_{micro,micro_a,macro,pack_a}_r<MR> for every MR of options.mrs, and gemm_pack_b. */
export function emitGemm(m: ModuleBuilder, { relaxed, mrs }: GemmCodegenOptions): void {
  const edge = emitEdgeCopy(m);
  for (const mr of mrs) {
    const micro = emitMicro(m, { relaxed, mr });
    const microA = emitMicroStridedA(m, { relaxed, mr });
    emitMacro(m, mr, m.indexOf(micro), m.indexOf(microA), m.indexOf(edge));
    emitPack(m, `gemm_pack_a_r${mr}`, true, mr);
  }
  emitPack(m, "gemm_pack_b", false, GEMM_NR);
}

interface TileOptions {
  relaxed: boolean;
  mr: number;
}

function emitMicro(m: ModuleBuilder, { relaxed, mr }: TileOptions): FunctionBuilder {
  const f = m.func(`gemm_micro_r${mr}`, ["i32", "i32", "i32", "i32", "i32", "i32", "i32"], []);
  const [kc, ap, bp, c, ldc, alpha, beta] = f.params;
  const acc = Array.from({ length: mr }, () => [f.local("v128"), f.local("v128")]);
  const b0 = f.local("v128");
  const b1 = f.local("v128");
  const a = f.local("v128");
  const t = f.local("v128");
  const row = f.local("i32");
  for (const r of acc) for (const v of r) f.f32(0).simd("f32x4.splat").set(v);
  // for (k = kc; k > 0; k--): acc[r][h] += splat(Ap[k][r]) * Bp[k][4h..4h+3]
  f.block();
  f.get(kc).op("i32.eqz").brIf(0);
  f.loop();
  f.get(bp).simdMem("v128.load", 0).set(b0);
  f.get(bp).simdMem("v128.load", 16).set(b1);
  for (let r = 0; r < mr; r++) {
    f.get(ap)
      .simdMem("v128.load32_splat", 4 * r)
      .set(a);
    for (let h = 0; h < 2; h++) {
      const b = h === 0 ? b0 : b1;
      if (relaxed) f.get(a).get(b).get(acc[r][h]).simd("f32x4.relaxed_madd").set(acc[r][h]);
      else f.get(acc[r][h]).get(a).get(b).simd("f32x4.mul").simd("f32x4.add").set(acc[r][h]);
    }
  }
  f.addTo(ap, 4 * mr).addTo(bp, 4 * GEMM_NR);
  f.get(kc).i32(1).op("i32.sub").tee(kc).brIf(0);
  f.end().end();
  emitEpilogue(f, { relaxed, mr }, acc, t, row, c, ldc, alpha, beta);
  return f;
}

/**
 * gemm_micro_a(kc, a, aRs, aKs, rows, b, bKs, c, ldc, alpha, beta): the micro-kernel reading A
 * in place (not packed): row r of the tile at a + min(r, rows-1)*aRs, advancing aKs bytes per k
 * (B: NR floats at b, advancing bKs bytes per k: NR*4 when packed, the row stride in place)
 * (rows past `rows` re-read the last valid row, so nothing outside A is touched; their results
 * are garbage the caller drops). Used when an A block is reused by too few B panels to repay
 * packing it (skinny N).
 */
function emitMicroStridedA(m: ModuleBuilder, { relaxed, mr }: TileOptions): FunctionBuilder {
  const f = m.func(
    `gemm_micro_a_r${mr}`,
    ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    [],
  );
  const [kc, a, aRs, aKs, rows, bp, bKs, c, ldc, alpha, beta] = f.params;
  const acc = Array.from({ length: mr }, () => [f.local("v128"), f.local("v128")]);
  const b0 = f.local("v128");
  const b1 = f.local("v128");
  const av = f.local("v128");
  const t = f.local("v128");
  const row = f.local("i32");
  const ptr = Array.from({ length: mr }, () => f.local("i32"));
  for (let r = 0; r < mr; r++) {
    // ptr[r] = a + min(r, rows - 1) * aRs
    f.get(a).i32(r).get(rows).i32(1).op("i32.sub").i32(r).get(rows).i32(1).op("i32.sub");
    f.op("i32.lt_s").op("select").get(aRs).op("i32.mul").op("i32.add").set(ptr[r]);
  }
  for (const r of acc) for (const v of r) f.f32(0).simd("f32x4.splat").set(v);
  f.block();
  f.get(kc).op("i32.eqz").brIf(0);
  f.loop();
  f.get(bp).simdMem("v128.load", 0).set(b0);
  f.get(bp).simdMem("v128.load", 16).set(b1);
  for (let r = 0; r < mr; r++) {
    f.get(ptr[r]).simdMem("v128.load32_splat", 0).set(av);
    for (let h = 0; h < 2; h++) {
      const b = h === 0 ? b0 : b1;
      if (relaxed) f.get(av).get(b).get(acc[r][h]).simd("f32x4.relaxed_madd").set(acc[r][h]);
      else f.get(acc[r][h]).get(av).get(b).simd("f32x4.mul").simd("f32x4.add").set(acc[r][h]);
    }
    f.addTo(ptr[r], aKs);
  }
  f.addTo(bp, bKs);
  f.get(kc).i32(1).op("i32.sub").tee(kc).brIf(0);
  f.end().end();
  emitEpilogue(f, { relaxed, mr }, acc, t, row, c, ldc, alpha, beta);
  return f;
}

/** C = alpha * acc (+ C when beta != 0), an MR x NR tile at c with row stride ldc bytes. */
function emitEpilogue(
  f: FunctionBuilder,
  { relaxed, mr }: TileOptions,
  acc: Local[][],
  t: Local,
  row: Local,
  c: Local,
  ldc: Local,
  alpha: Local,
  beta: Local,
): void {
  f.get(alpha).simd("i32x4.splat").set(t); // alpha arrives as its f32 bit pattern (see header)
  for (const withBeta of [true, false]) {
    if (withBeta) f.get(beta).if();
    else f.else();
    // last row first: see the header (V8 then keeps the loop's loads next to their FMAs)
    f.get(c)
      .get(ldc)
      .i32(mr - 1)
      .op("i32.mul")
      .op("i32.add")
      .set(row);
    for (let r = mr - 1; r >= 0; r--) {
      for (let h = 0; h < 2; h++) {
        f.get(row);
        if (withBeta) {
          if (relaxed) {
            f.get(acc[r][h])
              .get(t)
              .get(row)
              .simdMem("v128.load", 16 * h)
              .simd("f32x4.relaxed_madd");
          } else {
            f.get(acc[r][h])
              .get(t)
              .simd("f32x4.mul")
              .get(row)
              .simdMem("v128.load", 16 * h);
            f.simd("f32x4.add");
          }
        } else {
          f.get(acc[r][h]).get(t).simd("f32x4.mul");
        }
        f.simdMem("v128.store", 16 * h);
      }
      if (r > 0) f.get(row).get(ldc).op("i32.sub").set(row);
    }
  }
  f.end();
}

/** gemm_edge(tile, c, ldc, mr, nr, beta): C[r, j] = tile[r, j] (+ C[r, j]) for r < mr, j < nr. */
function emitEdgeCopy(m: ModuleBuilder): FunctionBuilder {
  const f = m.func("gemm_edge", ["i32", "i32", "i32", "i32", "i32", "i32"], [], false);
  const [tile, c, ldc, mr, nr, beta] = f.params;
  const j = f.local("i32");
  const src = f.local("i32");
  const dst = f.local("i32");
  f.block().get(mr).op("i32.eqz").brIf(0).loop(); // rows
  f.get(tile).set(src).get(c).set(dst).get(nr).set(j);
  f.block().get(j).op("i32.eqz").brIf(0).loop(); // columns
  // dst = src + (beta ? dst : 0); the select keeps NaN garbage in an overwritten C out
  f.get(dst).get(src).mem("f32.load");
  f.get(dst).mem("f32.load").f32(0).get(beta).op("select").op("f32.add");
  f.mem("f32.store");
  f.addTo(src, 4).addTo(dst, 4);
  f.get(j).i32(1).op("i32.sub").tee(j).brIf(0);
  f.end().end();
  f.addTo(tile, 4 * GEMM_NR).addTo(c, ldc);
  f.get(mr).i32(1).op("i32.sub").tee(mr).brIf(0);
  f.end().end();
  return f;
}

function emitMacro(
  m: ModuleBuilder,
  mr: number,
  microIndex: number,
  microAIndex: number,
  edgeIndex: number,
): void {
  const f = m.func(
    `gemm_macro_r${mr}`,
    [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
    ],
    [],
  );
  const [mc, nc, kc, ap, aRs, aKs, bp, bKs, bpStride, c, ldc, alpha, beta, tile] = f.params;
  const jr = f.local("i32");
  const ir = f.local("i32");
  const nr = f.local("i32");
  const rows = f.local("i32");
  const apTile = f.local("i32");
  const cCol = f.local("i32");
  const cTile = f.local("i32");
  const apStride = f.local("i32"); // bytes from one row tile of A to the next
  const cRowStep = f.local("i32"); // ldc * mr
  const full = f.local("i32");
  const fast = f.local("i32"); // both operands packed: the micro-kernel with static offsets
  const aRsA = f.local("i32"); // A row stride / k step as gemm_micro_a sees them
  const aKsA = f.local("i32");
  f.get(aRs)
    .op("i32.eqz")
    .get(bKs)
    .i32(4 * GEMM_NR)
    .op("i32.eq")
    .op("i32.and")
    .set(fast);
  f.i32(4).get(aRs).get(aRs).op("i32.eqz").op("select").set(aRsA);
  f.i32(4 * mr)
    .get(aKs)
    .get(aRs)
    .op("i32.eqz")
    .op("select")
    .set(aKsA);
  // packed A (aRs == 0): panels of kc*mr floats; in place: mr rows further
  f.get(kc)
    .i32(4 * mr)
    .op("i32.mul")
    .get(aRs)
    .i32(mr)
    .op("i32.mul")
    .get(aRs)
    .op("i32.eqz")
    .op("select");
  f.set(apStride);
  f.get(ldc).i32(mr).op("i32.mul").set(cRowStep);
  f.i32(0).set(jr).get(c).set(cCol);
  f.block().get(nc).op("i32.eqz").brIf(0).get(mc).op("i32.eqz").brIf(0);
  f.loop(); // over NR-column panels
  // nr = min(NR, nc - jr)
  f.get(nc).get(jr).op("i32.sub").set(nr);
  f.i32(GEMM_NR).get(nr).get(nr).i32(GEMM_NR).op("i32.gt_s").op("select").set(nr);
  f.i32(0).set(ir).get(ap).set(apTile).get(cCol).set(cTile);
  f.loop(); // over MR-row panels
  f.get(mc).get(ir).op("i32.sub").set(rows);
  f.i32(mr).get(rows).get(rows).i32(mr).op("i32.gt_s").op("select").set(rows);
  f.get(rows).i32(mr).op("i32.eq").get(nr).i32(GEMM_NR).op("i32.eq").op("i32.and").set(full);
  const callMicro = (toTile: boolean): void => {
    f.get(fast).if();
    f.get(kc).get(apTile).get(bp);
    if (toTile)
      f.get(tile)
        .i32(4 * GEMM_NR)
        .get(alpha)
        .i32(0);
    else f.get(cTile).get(ldc).get(alpha).get(beta);
    f.call(microIndex);
    f.else();
    f.get(kc).get(apTile).get(aRsA).get(aKsA).get(rows).get(bp).get(bKs);
    if (toTile)
      f.get(tile)
        .i32(4 * GEMM_NR)
        .get(alpha)
        .i32(0);
    else f.get(cTile).get(ldc).get(alpha).get(beta);
    f.call(microAIndex);
    f.end();
  };
  f.get(full).if();
  callMicro(false);
  f.else();
  callMicro(true);
  f.get(tile).get(cTile).get(ldc).get(rows).get(nr).get(beta).call(edgeIndex);
  f.end();
  f.addTo(apTile, apStride).addTo(cTile, cRowStep).addTo(ir, mr);
  f.get(ir).get(mc).op("i32.lt_s").brIf(0);
  f.end();
  f.addTo(bp, bpStride)
    .addTo(cCol, 4 * GEMM_NR)
    .addTo(jr, GEMM_NR);
  f.get(jr).get(nc).op("i32.lt_s").brIf(0);
  f.end().end();
}

/**
 * Packing into panels of `width` lanes: dst[p][k][w] = src(p*width + w, k), zero beyond `rows`.
 * Serves both A (lanes = rows of A, k = columns) and B (lanes = columns of B, k = rows): the
 * caller passes (laneStride, kStride) in bytes. Signature (src, rs, cs, ...) follows the matrix:
 * for A, lanes run along rs and k along cs; for B, k runs along rs and lanes along cs.
 */
function emitPack(m: ModuleBuilder, name: string, isA: boolean, width: number): void {
  const f = m.func(name, ["i32", "i32", "i32", "i32", "i32", "i32"], []);
  const [src, rs, cs, d0, d1, dst] = f.params;
  // A: (mc, kc) = (d0, d1), lanes along rs, k along cs.  B: (kc, nc) = (d0, d1), k along rs.
  const lanes = isA ? d0 : d1;
  const kc = isA ? d1 : d0;
  const laneStride = isA ? rs : cs;
  const kStride = isA ? cs : rs;
  const p = f.local("i32"); // first lane of the current panel
  const w = f.local("i32");
  const k = f.local("i32");
  const s = f.local("i32");
  const d = f.local("i32");
  const panelSrc = f.local("i32");
  const panelBytes = f.local("i32");
  f.get(kc)
    .i32(4 * width)
    .op("i32.mul")
    .set(panelBytes);
  f.i32(0).set(p).get(src).set(panelSrc);
  // vector paths for widths of 4 lanes plus at most 2 (MR 4, 5, 6; NR 8)
  const vectorPaths = width >= 4 && width % 4 <= 2;
  if (vectorPaths) {
    emitPackContiguousLanes(f, width, {
      src,
      lanes,
      kc,
      kStride,
      laneStride,
      dst,
      p,
      panelSrc,
      panelBytes,
    });
  }
  // the panels left (all of them, or the partial last one after the pass above), one at a time
  f.block().get(p).get(lanes).op("i32.ge_s").brIf(0).get(kc).op("i32.eqz").brIf(0);
  f.loop(); // panels
  // k contiguous along each lane (A in the NN/NT forms, B in the NT form): transpose in registers
  const transposePath = vectorPaths;
  if (transposePath) {
    f.get(kStride).i32(4).op("i32.eq").get(lanes).get(p).op("i32.sub").i32(width).op("i32.ge_s");
    f.op("i32.and").if();
    emitPackTranspose(f, width, { panelSrc, laneStride, kc, dst });
    f.else();
  }
  f.i32(0).set(w);
  f.loop(); // lanes of the panel
  f.get(panelSrc).get(w).get(laneStride).op("i32.mul").op("i32.add").set(s);
  f.get(dst).get(w).i32(4).op("i32.mul").op("i32.add").set(d);
  f.get(kc).set(k);
  f.get(p).get(w).op("i32.add").get(lanes).op("i32.lt_s").if();
  f.loop(); // copy a lane
  f.get(d).get(s).mem("i32.load").mem("i32.store");
  f.addTo(s, kStride).addTo(d, 4 * width);
  f.get(k).i32(1).op("i32.sub").tee(k).brIf(0);
  f.end();
  f.else();
  f.loop(); // zero a lane past the edge
  f.get(d).i32(0).mem("i32.store");
  f.addTo(d, 4 * width);
  f.get(k).i32(1).op("i32.sub").tee(k).brIf(0);
  f.end();
  f.end();
  f.addTo(w, 1);
  f.get(w).i32(width).op("i32.lt_s").brIf(0);
  f.end();
  if (transposePath) f.end();
  f.addTo(dst, panelBytes).addTo(p, width);
  f.get(panelSrc).get(laneStride).i32(width).op("i32.mul").op("i32.add").set(panelSrc);
  f.get(p).get(lanes).op("i32.lt_s").brIf(0);
  f.end().end();
}

/**
 * Lanes contiguous in the source (stride 4 bytes: B in the NN form, A in the TN form): copies
 * every full panel in passes over 4 k at a time, then points p, panelSrc and dst at the partial
 * panel left, if any. Why this order: panel by panel (the obvious loop), the kc source rows
 * touched (N*4 or M*4 bytes apart, often a multiple of 4 KiB) fall in one L1 set and are evicted
 * before the next panel reads the neighbouring bytes of the same lines; one k at a time across
 * all panels, the writes (panelBytes apart, same problem) each fill a fraction of a line. Four k
 * across all panels reads 4 rows front to back and writes 64-128 contiguous bytes per panel.
 */
function emitPackContiguousLanes(
  f: FunctionBuilder,
  width: number,
  r: {
    src: Local;
    lanes: Local;
    kc: Local;
    kStride: Local;
    laneStride: Local;
    dst: Local;
    p: Local;
    panelSrc: Local;
    panelBytes: Local;
  },
): void {
  const full = f.local("i32"); // lanes in full panels (a multiple of width)
  const q = f.local("i32");
  const k = f.local("i32");
  const s = Array.from({ length: 4 }, () => f.local("i32")); // rows k..k+3, at panel q
  const d = f.local("i32");
  const rowSrc = f.local("i32");
  const rowDst = f.local("i32");
  const kBytes = 4 * width; // packed bytes per k
  const copyRows = (rows: number): void => {
    f.get(full).set(q).get(rowDst).set(d).get(rowSrc).set(s[0]);
    for (let j = 1; j < rows; j++)
      f.get(s[j - 1])
        .get(r.kStride)
        .op("i32.add")
        .set(s[j]);
    f.loop(); // full panels
    for (let j = 0; j < rows; j++) {
      for (let v = 0; v < Math.floor(width / 4); v++) {
        f.get(d)
          .get(s[j])
          .simdMem("v128.load", 16 * v)
          .simdMem("v128.store", j * kBytes + 16 * v);
      }
      // the last width % 4 lanes: one i32, or two as one f64 (loads and stores keep the bits)
      const tail = 16 * Math.floor(width / 4);
      if (width % 4 === 1)
        f.get(d)
          .get(s[j])
          .mem("i32.load", tail)
          .mem("i32.store", j * kBytes + tail);
      if (width % 4 === 2)
        f.get(d)
          .get(s[j])
          .mem("f64.load", tail)
          .mem("f64.store", j * kBytes + tail);
    }
    for (let j = 0; j < rows; j++) f.addTo(s[j], 4 * width);
    f.addTo(d, r.panelBytes);
    f.get(q).i32(width).op("i32.sub").tee(q).brIf(0);
    f.end();
    f.get(rowSrc).get(r.kStride).i32(rows).op("i32.mul").op("i32.add").set(rowSrc);
    f.addTo(rowDst, rows * kBytes);
  };
  f.get(r.laneStride).i32(4).op("i32.eq").if();
  // full panels: lanes / width (no i32.div_u in the assembler: via the remainder)
  f.get(r.lanes).get(r.lanes).i32(width).op("i32.rem_u").op("i32.sub").set(full);
  f.block().get(full).op("i32.eqz").brIf(0).get(r.kc).op("i32.eqz").brIf(0);
  f.get(r.src).set(rowSrc).get(r.dst).set(rowDst);
  f.get(r.kc).i32(2).op("i32.shr_u").set(k);
  f.block().get(k).op("i32.eqz").brIf(0).loop(); // 4 k at a time
  copyRows(4);
  f.get(k).i32(1).op("i32.sub").tee(k).brIf(0);
  f.end().end();
  f.get(r.kc).i32(3).op("i32.and").set(k);
  f.block().get(k).op("i32.eqz").brIf(0).loop(); // the kc % 4 trailing k
  copyRows(1);
  f.get(k).i32(1).op("i32.sub").tee(k).brIf(0);
  f.end().end();
  f.get(full).set(r.p);
  f.get(r.src).get(r.p).i32(4).op("i32.mul").op("i32.add").set(r.panelSrc);
  f.get(r.dst).get(full).get(r.kc).op("i32.mul").i32(4).op("i32.mul").op("i32.add").set(r.dst);
  f.end();
  f.end();
}

/** Byte-lane indices of i8x16.shuffle selecting f32 lanes (0-3 first operand, 4-7 second). */
function f32Lanes(lanes: readonly number[]): number[] {
  return lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]);
}

/**
 * Packs one full panel of `width` lanes (4j, 4j + 1 or 4j + 2) whose k runs contiguously along
 * each lane (A row-major in the NN/NT forms; B in the NT form, B^T row-major): per 4 k and per
 * group of 4 lanes, four 16-byte loads, a 4x4 transpose in registers (two rounds of shuffles)
 * and four 16-byte stores, instead of 16 scalar copies (a last single lane: one load, four lane
 * stores; a last pair: two loads, four overlapping 16-byte stores, see below). Why: a packed A
 * block reused by few B panels (narrow NC: long K, column-split chunks on small M), or the
 * transposed B of the lm_head forward, made the scalar copy a sizeable fraction of the
 * multiply-adds. The last kc % 4 values are copied one by one.
 */
function emitPackTranspose(
  f: FunctionBuilder,
  width: number,
  { panelSrc, laneStride, kc, dst }: { panelSrc: Local; laneStride: Local; kc: Local; dst: Local },
): void {
  const src = Array.from({ length: width }, () => f.local("i32")); // lane w of the panel, at k
  const v = Array.from({ length: 4 }, () => f.local("v128"));
  const t = Array.from({ length: 4 }, () => f.local("v128"));
  const d = f.local("i32");
  const k = f.local("i32");
  const kStep = 4 * width; // bytes of packed output per k
  f.get(panelSrc).set(src[0]);
  for (let w = 1; w < width; w++)
    f.get(src[w - 1])
      .get(laneStride)
      .op("i32.add")
      .set(src[w]);
  f.get(dst).set(d);
  f.get(kc).i32(2).op("i32.shr_u").set(k);
  f.block().get(k).op("i32.eqz").brIf(0).loop();
  if (width % 4 === 1) {
    // the last lane: its 4 k, one lane store each
    const g = width - 1;
    f.get(src[g]).simdMem("v128.load", 0).set(v[0]);
    for (let i = 0; i < 4; i++)
      f.get(d)
        .get(v[0])
        .simdLane("v128.store32_lane", i, kStep * i + 4 * g);
  }
  if (width % 4 === 2) {
    // the last two lanes (a, b) first: at k + i one 16-byte store of (a_i, b_i, a_i, b_i) at lane
    // width-2, whose upper half lands on lanes 0-1 of k + i + 1, rewritten by the 4-lane stores
    // below (or, after the last k, by the next pass, the trailing k, or the next panel: past the
    // last panel it is the 8 bytes of slack the caller leaves after the buffer)
    const g = width - 2;
    f.get(src[g]).simdMem("v128.load", 0).set(v[0]);
    f.get(src[g + 1])
      .simdMem("v128.load", 0)
      .set(v[1]);
    for (let i = 0; i < 4; i++) {
      f.get(d)
        .get(v[0])
        .get(v[1])
        .shuffle(f32Lanes([i, 4 + i, i, 4 + i]));
      f.simdMem("v128.store", kStep * i + 4 * g);
    }
  }
  for (let g = 0; g + 4 <= width; g += 4) {
    for (let r = 0; r < 4; r++)
      f.get(src[g + r])
        .simdMem("v128.load", 0)
        .set(v[r]);
    // lanes a, b, c, d -> t0 = a0 b0 a1 b1, t1 = a2 b2 a3 b3, t2 = c0 d0 c1 d1, t3 = c2 d2 c3 d3
    f.get(v[0])
      .get(v[1])
      .shuffle(f32Lanes([0, 4, 1, 5]))
      .set(t[0]);
    f.get(v[0])
      .get(v[1])
      .shuffle(f32Lanes([2, 6, 3, 7]))
      .set(t[1]);
    f.get(v[2])
      .get(v[3])
      .shuffle(f32Lanes([0, 4, 1, 5]))
      .set(t[2]);
    f.get(v[2])
      .get(v[3])
      .shuffle(f32Lanes([2, 6, 3, 7]))
      .set(t[3]);
    // at k + i: (a_i, b_i, c_i, d_i), lanes g..g+3 of the packed row
    const at = (i: number): number => kStep * i + 4 * g;
    f.get(d)
      .get(t[0])
      .get(t[2])
      .shuffle(f32Lanes([0, 1, 4, 5]))
      .simdMem("v128.store", at(0));
    f.get(d)
      .get(t[0])
      .get(t[2])
      .shuffle(f32Lanes([2, 3, 6, 7]))
      .simdMem("v128.store", at(1));
    f.get(d)
      .get(t[1])
      .get(t[3])
      .shuffle(f32Lanes([0, 1, 4, 5]))
      .simdMem("v128.store", at(2));
    f.get(d)
      .get(t[1])
      .get(t[3])
      .shuffle(f32Lanes([2, 3, 6, 7]))
      .simdMem("v128.store", at(3));
  }
  for (const sw of src) f.addTo(sw, 16);
  f.addTo(d, 4 * kStep);
  f.get(k).i32(1).op("i32.sub").tee(k).brIf(0);
  f.end().end();
  // the kc % 4 trailing k: one float per lane
  f.get(kc).i32(3).op("i32.and").set(k);
  f.block().get(k).op("i32.eqz").brIf(0).loop();
  for (let w = 0; w < width; w++)
    f.get(d)
      .get(src[w])
      .mem("i32.load")
      .mem("i32.store", 4 * w);
  for (const sw of src) f.addTo(sw, 4);
  f.addTo(d, kStep);
  f.get(k).i32(1).op("i32.sub").tee(k).brIf(0);
  f.end().end();
}
