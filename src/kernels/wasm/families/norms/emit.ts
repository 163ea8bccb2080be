// Code generation of RMSNorm and LayerNorm (kernels/ref/norms.ts: formulas and sources there) and
// their backwards as WebAssembly SIMD128 functions over rows of `cols` floats (the per-thread job
// that runs them over chunks of rows: job.ts). Row sums are f32 vectors (4 lanes, reduced at the
// end of the row); the row statistics (mean, rstd, the backwards' coefficients) are computed in f64 from
// those sums, as the reference does from its f64 sums.
//
//   rms_fwd(out, rstd, inp, weight, rows, cols, colsF64, eps): rstd[r] = 1/sqrt(mean(x^2) + eps),
//       out = (x * rstd) * w. out may be inp itself.
//   rms_bwd(dInp, part, dOut, inp, weight, rstd, rows, cols, colsF64):
//       dInp += (rstd w) dy - coef x, coef = rstd^3 sum(w dy x) / cols; and when part != 0,
//       part (cols) = sum over these rows of (dy x) rstd (overwritten: the chunk's partial dWeight).
//   ln_fwd(out, mean, rstd, inp, weight, bias, rows, cols, colsF64, eps): mean[r] = mu,
//       rstd[r] = 1/sqrt(mean((x - mu)^2) + eps) (two passes), out = ((x - mu) rstd) w + b.
//   ln_bwd(dInp, part, dOut, inp, weight, mean, rstd, rows, cols, colsF64): with n = (x - mu) rstd,
//       g = w dy: dInp += rstd (g - mean(g) - n mean(g n)); when part != 0, part (2 cols) =
//       [sum of dy n, sum of dy] over these rows (the chunk's partial dWeight and dBias).
//   rms_bwd_set, ln_bwd_set: the same with dInp = ... instead of += (dInp is never read; the
//       partials are the same).
//   colsum_add(dst, src, count, cols, stride): dst[c] += sum_{k < count} src[k stride + c] (stride
//       in bytes), k in order.
//
// Weight (and bias) gradients with threads: chunk k of the rows writes its partial into
// part + k (cols or 2 cols) (scratch owned by the caller), and the caller adds the partials in
// chunk order with colsum_add, so the result does not depend on which thread ran which chunk,
// nor on the thread count.
// The last cols % 4 floats of a row go one at a time (v128.load32_zero / v128.store32_lane).

import type { FunctionBuilder, Local, ModuleBuilder } from "../../asm.js";

/** shuffle(zero, v): lane 0 of v, zeros elsewhere. */
const FIRST_LANE_ONLY = [16, 17, 18, 19, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3];

/** Pushes the f32 sum of the 4 lanes of `v` (clobbers v). */
function pushLaneSum(f: FunctionBuilder, v: Local): void {
  f.reduceLanes(v, "f32x4.add").get(v).simdLane("f32x4.extract_lane", 0);
}

/**
 * Emits a loop over the bytes of a row: `body(width, j)` once for each 16 bytes below vecEnd,
 * then for each remaining 4 bytes (width 1); j (a byte offset) starts at 0.
 */
function rowLoop(
  f: FunctionBuilder,
  j: Local,
  vecEnd: Local,
  rowBytes: Local,
  body: (width: 4 | 1) => void,
): void {
  f.i32(0).set(j);
  for (const width of [4, 1] as const) {
    const end = width === 4 ? vecEnd : rowBytes;
    f.block().get(j).get(end).op("i32.ge_u").brIf(0).loop();
    body(width);
    f.addTo(j, 4 * width);
    f.get(j).get(end).op("i32.lt_u").brIf(0);
    f.end().end();
  }
}

function loader(f: FunctionBuilder, j: Local): (base: Local, width: 4 | 1) => void {
  return (base, width) => {
    f.get(base)
      .get(j)
      .op("i32.add")
      .simdMem(width === 4 ? "v128.load" : "v128.load32_zero", 0);
  };
}

/** Stores the v128 on top of the stack at the address below it (lane 0 only when width is 1). */
function storeTo(f: FunctionBuilder, width: 4 | 1): void {
  if (width === 4) f.simdMem("v128.store", 0);
  else f.simdLane("v128.store32_lane", 0, 0);
}

/** Pushes demote(1 / sqrt(promote(ss) / colsF64 + eps)) given the f32 sum of squares on the stack. */
function emitRstd(f: FunctionBuilder, colsF64: Local, eps: Local): void {
  const ss = f.local("f64");
  f.op("f64.promote_f32").set(ss);
  f.f32(1).op("f64.promote_f32");
  f.get(ss).get(colsF64).op("f64.div").get(eps).op("f64.add").op("f64.sqrt").op("f64.div");
  f.op("f32.demote_f64");
}

function emitRmsForward(m: ModuleBuilder): void {
  const f = m.func("rms_fwd", ["i32", "i32", "i32", "i32", "i32", "i32", "f64", "f64"], []);
  const [out, rstd, inp, weight, rows, cols, colsF64, eps] = f.params;
  const rowBytes = f.local("i32");
  const vecEnd = f.local("i32");
  const r = f.local("i32");
  const j = f.local("i32");
  const acc = f.local("v128");
  const x = f.local("v128");
  const sv = f.local("v128");
  const s = f.local("f32");
  const load = loader(f, j);
  f.get(cols).i32(2).op("i32.shl").tee(rowBytes).i32(-16).op("i32.and").set(vecEnd);
  f.block().get(rows).op("i32.eqz").brIf(0).loop();
  f.f32(0).simd("f32x4.splat").set(acc);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    load(inp, w);
    f.tee(x).get(x).simd("f32x4.mul").get(acc).simd("f32x4.add").set(acc);
  });
  pushLaneSum(f, acc);
  emitRstd(f, colsF64, eps);
  f.set(s);
  f.get(rstd).get(s).mem("f32.store");
  f.get(s).simd("f32x4.splat").set(sv);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    f.get(out).get(j).op("i32.add");
    load(inp, w);
    f.get(sv).simd("f32x4.mul");
    load(weight, w);
    f.simd("f32x4.mul");
    storeTo(f, w);
  });
  f.addTo(inp, rowBytes).addTo(out, rowBytes).addTo(rstd, 4).addTo(r, 1);
  f.get(r).get(rows).op("i32.lt_u").brIf(0);
  f.end().end();
}

/** Emits rms_bwd (accumulate into dInp) or rms_bwd_set (overwrite: no load of dInp generated). */
function emitRmsBackward(m: ModuleBuilder, accumulate: boolean): void {
  const f = m.func(
    accumulate ? "rms_bwd" : "rms_bwd_set",
    ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "f64"],
    [],
  );
  const [dInp, part, dOut, inp, weight, rstd, rows, cols, colsF64] = f.params;
  const rowBytes = f.local("i32");
  const vecEnd = f.local("i32");
  const r = f.local("i32");
  const j = f.local("i32");
  const acc = f.local("v128");
  const dy = f.local("v128");
  const x = f.local("v128");
  const sv = f.local("v128");
  const cv = f.local("v128");
  const s = f.local("f64");
  const load = loader(f, j);
  f.get(cols).i32(2).op("i32.shl").tee(rowBytes).i32(-16).op("i32.and").set(vecEnd);
  // part = 0
  f.get(part).if();
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    f.get(part).get(j).op("i32.add").f32(0).simd("f32x4.splat");
    storeTo(f, w);
  });
  f.end();
  f.block().get(rows).op("i32.eqz").brIf(0).loop();
  f.get(rstd).mem("f32.load").op("f64.promote_f32").set(s);
  // dot = sum (w dy) x
  f.f32(0).simd("f32x4.splat").set(acc);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    load(weight, w);
    load(dOut, w);
    f.simd("f32x4.mul");
    load(inp, w);
    f.simd("f32x4.mul").get(acc).simd("f32x4.add").set(acc);
  });
  // coef = s^3 dot / cols (f64, rounded once)
  f.get(s).get(s).op("f64.mul").get(s).op("f64.mul");
  pushLaneSum(f, acc);
  f.op("f64.promote_f32")
    .op("f64.mul")
    .get(colsF64)
    .op("f64.div")
    .op("f32.demote_f64")
    .simd("f32x4.splat")
    .set(cv);
  f.get(s).op("f32.demote_f64").simd("f32x4.splat").set(sv);
  for (const withPart of [true, false]) {
    if (withPart) f.get(part).if();
    else f.else();
    rowLoop(f, j, vecEnd, rowBytes, (w) => {
      load(dOut, w);
      f.set(dy);
      load(inp, w);
      f.set(x);
      // dInp += (s w) dy - coef x  (= when overwriting)
      f.get(dInp).get(j).op("i32.add");
      if (accumulate) load(dInp, w);
      f.get(sv);
      load(weight, w);
      f.simd("f32x4.mul")
        .get(dy)
        .simd("f32x4.mul")
        .get(cv)
        .get(x)
        .simd("f32x4.mul")
        .simd("f32x4.sub");
      if (accumulate) f.simd("f32x4.add");
      storeTo(f, w);
      if (withPart) {
        // part += (dy x) s
        f.get(part).get(j).op("i32.add");
        load(part, w);
        f.get(dy).get(x).simd("f32x4.mul").get(sv).simd("f32x4.mul").simd("f32x4.add");
        storeTo(f, w);
      }
    });
  }
  f.end();
  f.addTo(dInp, rowBytes).addTo(dOut, rowBytes).addTo(inp, rowBytes).addTo(rstd, 4).addTo(r, 1);
  f.get(r).get(rows).op("i32.lt_u").brIf(0);
  f.end().end();
}

function emitColumnSum(m: ModuleBuilder): void {
  const f = m.func("colsum_add", ["i32", "i32", "i32", "i32", "i32"], []);
  const [dst, src, count, cols, stride] = f.params;
  const rowBytes = f.local("i32");
  const vecEnd = f.local("i32");
  const j = f.local("i32");
  const k = f.local("i32");
  const p = f.local("i32");
  const acc = f.local("v128");
  const load = loader(f, j);
  f.get(cols).i32(2).op("i32.shl").tee(rowBytes).i32(-16).op("i32.and").set(vecEnd);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    f.f32(0).simd("f32x4.splat").set(acc);
    f.get(src).get(j).op("i32.add").set(p);
    f.i32(0).set(k);
    f.block().get(count).op("i32.eqz").brIf(0).loop();
    f.get(acc)
      .get(p)
      .simdMem(w === 4 ? "v128.load" : "v128.load32_zero", 0)
      .simd("f32x4.add")
      .set(acc);
    f.addTo(p, stride).addTo(k, 1);
    f.get(k).get(count).op("i32.lt_u").brIf(0);
    f.end().end();
    f.get(dst).get(j).op("i32.add");
    load(dst, w);
    f.get(acc).simd("f32x4.add");
    storeTo(f, w);
  });
}

function emitLayerNormForward(m: ModuleBuilder): void {
  const f = m.func(
    "ln_fwd",
    ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "f64", "f64"],
    [],
  );
  const [out, mean, rstd, inp, weight, bias, rows, cols, colsF64, eps] = f.params;
  const rowBytes = f.local("i32");
  const vecEnd = f.local("i32");
  const r = f.local("i32");
  const j = f.local("i32");
  const acc = f.local("v128");
  const x = f.local("v128");
  const mv = f.local("v128");
  const sv = f.local("v128");
  const mu = f.local("f32");
  const s = f.local("f32");
  const load = loader(f, j);
  f.get(cols).i32(2).op("i32.shl").tee(rowBytes).i32(-16).op("i32.and").set(vecEnd);
  f.block().get(rows).op("i32.eqz").brIf(0).loop();
  // mu = sum(x) / cols
  f.f32(0).simd("f32x4.splat").set(acc);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    load(inp, w);
    f.get(acc).simd("f32x4.add").set(acc);
  });
  pushLaneSum(f, acc);
  f.op("f64.promote_f32")
    .get(colsF64)
    .op("f64.div")
    .op("f32.demote_f64")
    .tee(mu)
    .simd("f32x4.splat")
    .set(mv);
  // rstd from sum((x - mu)^2); in the tail, lanes 1-3 (zero-filled loads, x - mu = -mu there)
  // are zeroed before squaring
  f.f32(0).simd("f32x4.splat").set(acc);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    load(inp, w);
    f.get(mv).simd("f32x4.sub").set(x);
    if (w === 1) f.f32(0).simd("f32x4.splat").get(x).shuffle(FIRST_LANE_ONLY).set(x);
    f.get(x).get(x).simd("f32x4.mul").get(acc).simd("f32x4.add").set(acc);
  });
  pushLaneSum(f, acc);
  emitRstd(f, colsF64, eps);
  f.set(s);
  f.get(mean).get(mu).mem("f32.store");
  f.get(rstd).get(s).mem("f32.store");
  f.get(s).simd("f32x4.splat").set(sv);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    f.get(out).get(j).op("i32.add");
    load(inp, w);
    f.get(mv).simd("f32x4.sub").get(sv).simd("f32x4.mul");
    load(weight, w);
    f.simd("f32x4.mul");
    load(bias, w);
    f.simd("f32x4.add");
    storeTo(f, w);
  });
  f.addTo(inp, rowBytes).addTo(out, rowBytes).addTo(mean, 4).addTo(rstd, 4).addTo(r, 1);
  f.get(r).get(rows).op("i32.lt_u").brIf(0);
  f.end().end();
}

/** Emits ln_bwd (accumulate into dInp) or ln_bwd_set (overwrite: no load of dInp generated). */
function emitLayerNormBackward(m: ModuleBuilder, accumulate: boolean): void {
  const f = m.func(
    accumulate ? "ln_bwd" : "ln_bwd_set",
    ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "f64"],
    [],
  );
  const [dInp, part, dOut, inp, weight, mean, rstd, rows, cols, colsF64] = f.params;
  const rowBytes = f.local("i32");
  const vecEnd = f.local("i32");
  const r = f.local("i32");
  const j = f.local("i32");
  const partB = f.local("i32"); // the dBias partial: part + rowBytes
  const gAcc = f.local("v128");
  const gxAcc = f.local("v128");
  const dy = f.local("v128");
  const n = f.local("v128");
  const g = f.local("v128");
  const mv = f.local("v128");
  const sv = f.local("v128");
  const gMean = f.local("v128");
  const gnMean = f.local("v128");
  const s = f.local("f32");
  const load = loader(f, j);
  f.get(cols).i32(2).op("i32.shl").tee(rowBytes).i32(-16).op("i32.and").set(vecEnd);
  f.get(part).get(rowBytes).op("i32.add").set(partB);
  // part = 0 (both halves)
  f.get(part).if();
  for (const base of [part, partB]) {
    rowLoop(f, j, vecEnd, rowBytes, (w) => {
      f.get(base).get(j).op("i32.add").f32(0).simd("f32x4.splat");
      storeTo(f, w);
    });
  }
  f.end();
  f.block().get(rows).op("i32.eqz").brIf(0).loop();
  f.get(rstd).mem("f32.load").tee(s).simd("f32x4.splat").set(sv);
  f.get(mean).mem("f32.load").simd("f32x4.splat").set(mv);
  // sums of g = w dy and of g (x - mu) (zero-filled tail lanes: g = 0 there)
  f.f32(0).simd("f32x4.splat").tee(gAcc).set(gxAcc);
  rowLoop(f, j, vecEnd, rowBytes, (w) => {
    load(weight, w);
    load(dOut, w);
    f.simd("f32x4.mul").tee(g).get(gAcc).simd("f32x4.add").set(gAcc);
    load(inp, w);
    f.get(mv).simd("f32x4.sub").get(g).simd("f32x4.mul").get(gxAcc).simd("f32x4.add").set(gxAcc);
  });
  // gMean = sum(g) / cols; gnMean = sum(g (x - mu)) rstd / cols (f64, rounded once)
  pushLaneSum(f, gAcc);
  f.op("f64.promote_f32")
    .get(colsF64)
    .op("f64.div")
    .op("f32.demote_f64")
    .simd("f32x4.splat")
    .set(gMean);
  pushLaneSum(f, gxAcc);
  f.op("f64.promote_f32").get(s).op("f64.promote_f32").op("f64.mul").get(colsF64).op("f64.div");
  f.op("f32.demote_f64").simd("f32x4.splat").set(gnMean);
  for (const withPart of [true, false]) {
    if (withPart) f.get(part).if();
    else f.else();
    rowLoop(f, j, vecEnd, rowBytes, (w) => {
      load(dOut, w);
      f.set(dy);
      load(inp, w);
      f.get(mv).simd("f32x4.sub").get(sv).simd("f32x4.mul").set(n);
      // dInp += rstd ((w dy - gMean) - n gnMean)  (= when overwriting)
      f.get(dInp).get(j).op("i32.add");
      if (accumulate) load(dInp, w);
      load(weight, w);
      f.get(dy)
        .simd("f32x4.mul")
        .get(gMean)
        .simd("f32x4.sub")
        .get(n)
        .get(gnMean)
        .simd("f32x4.mul")
        .simd("f32x4.sub");
      f.get(sv).simd("f32x4.mul");
      if (accumulate) f.simd("f32x4.add");
      storeTo(f, w);
      if (withPart) {
        f.get(part).get(j).op("i32.add");
        load(part, w);
        f.get(dy).get(n).simd("f32x4.mul").simd("f32x4.add");
        storeTo(f, w);
        f.get(partB).get(j).op("i32.add");
        load(partB, w);
        f.get(dy).simd("f32x4.add");
        storeTo(f, w);
      }
    });
  }
  f.end();
  f.addTo(dInp, rowBytes)
    .addTo(dOut, rowBytes)
    .addTo(inp, rowBytes)
    .addTo(mean, 4)
    .addTo(rstd, 4)
    .addTo(r, 1);
  f.get(r).get(rows).op("i32.lt_u").brIf(0);
  f.end().end();
}

/** Emits rms_fwd, rms_bwd, rms_bwd_set, ln_fwd, ln_bwd, ln_bwd_set and colsum_add into `m`. */
export function emitNorms(m: ModuleBuilder): void {
  emitRmsForward(m);
  emitRmsBackward(m, true);
  emitRmsBackward(m, false);
  emitLayerNormForward(m);
  emitLayerNormBackward(m, true);
  emitLayerNormBackward(m, false);
  emitColumnSum(m);
}
