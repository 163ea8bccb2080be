// Code generation of the attention softmax rows (forward and backward) and of the cross-entropy
// rows as WebAssembly SIMD128 functions (the per-thread jobs that run them: job.ts). Semantics
// follow kernels/ref/attention.ts exactly (mask rule, clamped key lengths, all-zero rows that see
// no key); arithmetic is f32 (the reference sums in f64), exp as in ../elementwise/emit.ts.
//
//   sm_fwd(src, dst, visible, total, scale): dst[j] = softmax_j(scale * src[0..visible)) for
//       j < visible, 0 for visible <= j < total. dst may be src.
//   sm_bwd(dS, p, dp, cols, scale): dS[j] += scale * p[j] * (dp[j] - sum_k p[k] dp[k]).
//   sm_bwd_set: the same with dS[j] = ... (dS is never read).
//   ce_row(x, d, V, gradScale, stats): the cross-entropy row of kernels/ref/cross-entropy.ts:
//       stats f32[0] = max_v x[v], f64 at stats+8 = sum_v exp(x[v] - max) (f32 terms summed in
//       blocks of 1024 and the block sums in f64); if d != 0, d[v] = exp(x[v] - max) * gradScale
//       / sum (the exps are stored in d by the summing pass, then rescaled); d may be x. The job
//       finishes the row in JS: loss = max + log(sum) - x[t] (x[t] read before ce_row),
//       d[t] -= gradScale.
//   ld_i32 / ld_f32 / ld_f64 / st_f32: single loads and stores for the job's bookkeeping.

import type { Local, ModuleBuilder } from "../../asm.js";
import { emitExpInto } from "../elementwise/emit.js";

function emitForward(m: ModuleBuilder): void {
  const f = m.func("sm_fwd", ["i32", "i32", "i32", "i32", "f32"], []);
  const [src, dst, visible, total, scale] = f.params;
  const sv = f.local("v128");
  const mx = f.local("v128");
  const acc = f.local("v128");
  const x = f.local("v128");
  const e = f.local("v128");
  const tailSum = f.local("f32");
  const j = f.local("i32");
  const vecEnd = f.local("i32");
  const s = f.local("i32");
  const d = f.local("i32");
  const exp = emitExpInto(f);
  f.get(scale).simd("f32x4.splat").set(sv);
  f.get(visible).i32(-4).op("i32.and").set(vecEnd);
  const forEach = (end: Local, width: 4 | 1, body: () => void): void => {
    f.block().get(j).get(end).op("i32.ge_u").brIf(0).loop();
    body();
    f.addTo(s, 4 * width)
      .addTo(d, 4 * width)
      .addTo(j, width);
    f.get(j).get(end).op("i32.lt_u").brIf(0);
    f.end().end();
  };
  const start = (): void => {
    f.i32(0).set(j).get(src).set(s).get(dst).set(d);
  };
  f.block().get(visible).op("i32.eqz").brIf(0);
  // pass 1: max of scale * x (NaN entries ignored, as `v > max` does)
  f.f32(Number.NEGATIVE_INFINITY).simd("f32x4.splat").set(mx);
  start();
  forEach(vecEnd, 4, () => {
    f.get(mx).get(s).simdMem("v128.load", 0).get(sv).simd("f32x4.mul").simd("f32x4.pmax").set(mx);
  });
  forEach(visible, 1, () => {
    f.get(mx)
      .get(s)
      .simdMem("v128.load32_splat", 0)
      .get(sv)
      .simd("f32x4.mul")
      .simd("f32x4.pmax")
      .set(mx);
  });
  f.reduceLanes(mx, "f32x4.pmax");
  // pass 2: e = exp(scale * x - max), stored, summed
  f.f32(0).simd("f32x4.splat").set(acc).f32(0).set(tailSum);
  start();
  forEach(vecEnd, 4, () => {
    f.get(s).simdMem("v128.load", 0).get(sv).simd("f32x4.mul").get(mx).simd("f32x4.sub").set(x);
    exp(x, e);
    f.get(d).get(e).simdMem("v128.store", 0);
    f.get(acc).get(e).simd("f32x4.add").set(acc);
  });
  forEach(visible, 1, () => {
    f.get(s)
      .simdMem("v128.load32_splat", 0)
      .get(sv)
      .simd("f32x4.mul")
      .get(mx)
      .simd("f32x4.sub")
      .set(x);
    exp(x, e);
    f.get(d).get(e).simdLane("v128.store32_lane", 0, 0);
    f.get(tailSum).get(e).simdLane("f32x4.extract_lane", 0).op("f32.add").set(tailSum);
  });
  f.reduceLanes(acc, "f32x4.add");
  // pass 3: scale by 1 / sum
  f.f32(1).simd("f32x4.splat").get(acc).get(tailSum).simd("f32x4.splat").simd("f32x4.add");
  f.simd("f32x4.div").set(acc);
  start();
  forEach(vecEnd, 4, () => {
    f.get(d).get(d).simdMem("v128.load", 0).get(acc).simd("f32x4.mul").simdMem("v128.store", 0);
  });
  forEach(visible, 1, () => {
    f.get(d).get(d).simdMem("v128.load32_zero", 0).get(acc).simd("f32x4.mul");
    f.simdLane("v128.store32_lane", 0, 0);
  });
  f.end();
  // masked tail: zeros
  f.get(dst).get(visible).i32(4).op("i32.mul").op("i32.add").set(d);
  f.get(visible).set(j);
  f.get(d).set(s);
  forEach(total, 1, () => {
    f.get(d).i32(0).mem("i32.store");
  });
}

/** Emits sm_bwd (accumulate) or sm_bwd_set (overwrite: the load of dS is not generated). */
function emitBackward(m: ModuleBuilder, accumulate: boolean): void {
  const f = m.func(accumulate ? "sm_bwd" : "sm_bwd_set", ["i32", "i32", "i32", "i32", "f32"], []);
  const [dS, p, dp, cols, scale] = f.params;
  const dot = f.local("v128");
  const sv = f.local("v128");
  const j = f.local("i32");
  const vecEnd = f.local("i32");
  const a = f.local("i32");
  const b = f.local("i32");
  const c = f.local("i32");
  f.get(scale).simd("f32x4.splat").set(sv);
  f.get(cols).i32(-4).op("i32.and").set(vecEnd);
  const pass = (body: (width: 4 | 1) => void): void => {
    f.i32(0).set(j).get(dS).set(a).get(p).set(b).get(dp).set(c);
    for (const width of [4, 1] as const) {
      const end = width === 4 ? vecEnd : cols;
      f.block().get(j).get(end).op("i32.ge_u").brIf(0).loop();
      body(width);
      f.addTo(a, 4 * width)
        .addTo(b, 4 * width)
        .addTo(c, 4 * width)
        .addTo(j, width);
      f.get(j).get(end).op("i32.lt_u").brIf(0);
      f.end().end();
    }
  };
  const load = (ptr: Local, width: 4 | 1): void => {
    f.get(ptr).simdMem(width === 4 ? "v128.load" : "v128.load32_zero", 0);
  };
  // dot = sum p * dp (zero-padded lanes add 0)
  f.f32(0).simd("f32x4.splat").set(dot);
  pass((w) => {
    f.get(dot);
    load(b, w);
    load(c, w);
    f.simd("f32x4.mul").simd("f32x4.add").set(dot);
  });
  f.reduceLanes(dot, "f32x4.add");
  pass((w) => {
    f.get(a);
    if (accumulate) load(a, w);
    f.get(sv);
    load(b, w);
    f.simd("f32x4.mul");
    load(c, w);
    f.get(dot).simd("f32x4.sub").simd("f32x4.mul");
    if (accumulate) f.simd("f32x4.add");
    if (w === 4) f.simdMem("v128.store", 0);
    else f.simdLane("v128.store32_lane", 0, 0);
  });
}

function emitCrossEntropyRow(m: ModuleBuilder): void {
  const f = m.func("ce_row", ["i32", "i32", "i32", "f32", "i32"], []);
  const [src, dst, vocab, gradScale, stats] = f.params;
  const mx = f.local("v128");
  const acc = f.local("v128");
  const x = f.local("v128");
  const e = f.local("v128");
  const total = f.local("f64");
  const j = f.local("i32");
  const vecEnd = f.local("i32");
  const blockEnd = f.local("i32");
  const s = f.local("i32");
  const d = f.local("i32");
  const exp = emitExpInto(f);
  f.get(vocab).i32(-4).op("i32.and").set(vecEnd);
  const loop = (end: Local, step: number, body: () => void): void => {
    f.block().get(j).get(end).op("i32.ge_u").brIf(0).loop();
    body();
    f.addTo(j, step);
    f.get(j).get(end).op("i32.lt_u").brIf(0);
    f.end().end();
  };
  // pass 1: max (NaN ignored, as `x > max` does)
  f.f32(Number.NEGATIVE_INFINITY).simd("f32x4.splat").set(mx);
  f.i32(0).set(j).get(src).set(s);
  loop(vecEnd, 4, () => {
    f.get(mx).get(s).simdMem("v128.load", 0).simd("f32x4.pmax").set(mx);
    f.addTo(s, 16);
  });
  loop(vocab, 1, () => {
    f.get(mx).get(s).simdMem("v128.load32_splat", 0).simd("f32x4.pmax").set(mx);
    f.addTo(s, 4);
  });
  f.reduceLanes(mx, "f32x4.pmax");
  f.get(stats).get(mx).simdLane("f32x4.extract_lane", 0).mem("f32.store");
  // pass 2: sum of exp(x - max), blocks of 1024 in f32, block sums in f64; with d, the exps are
  // stored there so that pass 3 only rescales (one exp per logit instead of two: the vocab-wide
  // row stays in L2 between the passes)
  const pass2 = (store: boolean): void => {
    f.f64Zero(total);
    f.i32(0).set(j).get(src).set(s).get(dst).set(d);
    f.block().get(j).get(vecEnd).op("i32.ge_u").brIf(0).loop(); // blocks
    f.get(j).i32(1024).op("i32.add").set(blockEnd);
    f.get(vecEnd).get(blockEnd).get(blockEnd).get(vecEnd).op("i32.gt_u").op("select").set(blockEnd);
    f.f32(0).simd("f32x4.splat").set(acc);
    f.loop();
    f.get(s).simdMem("v128.load", 0).get(mx).simd("f32x4.sub").set(x);
    exp(x, e);
    f.get(acc).get(e).simd("f32x4.add").set(acc);
    if (store) f.get(d).get(e).simdMem("v128.store", 0).addTo(d, 16);
    f.addTo(s, 16).addTo(j, 4);
    f.get(j).get(blockEnd).op("i32.lt_u").brIf(0);
    f.end();
    f.reduceLanes(acc, "f32x4.add");
    f.get(total)
      .get(acc)
      .simdLane("f32x4.extract_lane", 0)
      .op("f64.promote_f32")
      .op("f64.add")
      .set(total);
    f.get(j).get(vecEnd).op("i32.lt_u").brIf(0);
    f.end().end();
    loop(vocab, 1, () => {
      f.get(s).simdMem("v128.load32_splat", 0).get(mx).simd("f32x4.sub").set(x);
      exp(x, e);
      f.get(total)
        .get(e)
        .simdLane("f32x4.extract_lane", 0)
        .op("f64.promote_f32")
        .op("f64.add")
        .set(total);
      if (store) f.get(d).get(e).simdLane("v128.store32_lane", 0, 0).addTo(d, 4);
      f.addTo(s, 4);
    });
  };
  f.get(dst).if();
  pass2(true);
  f.else();
  pass2(false);
  f.end();
  f.get(stats).get(total).mem("f64.store", 8);
  // pass 3 (with d): d = exp(x - max) * (gradScale / sum), the exps from pass 2
  f.block().get(dst).op("i32.eqz").brIf(0);
  f.get(gradScale)
    .op("f64.promote_f32")
    .get(total)
    .op("f64.div")
    .op("f32.demote_f64")
    .simd("f32x4.splat")
    .set(acc);
  f.i32(0).set(j).get(dst).set(d);
  loop(vecEnd, 4, () => {
    f.get(d).get(d).simdMem("v128.load", 0).get(acc).simd("f32x4.mul").simdMem("v128.store", 0);
    f.addTo(d, 16);
  });
  loop(vocab, 1, () => {
    f.get(d)
      .get(d)
      .simdMem("v128.load32_splat", 0)
      .get(acc)
      .simd("f32x4.mul")
      .simdLane("v128.store32_lane", 0, 0);
    f.addTo(d, 4);
  });
  f.end();
}

function emitAccessors(m: ModuleBuilder): void {
  m.func("ld_i32", ["i32"], ["i32"]).get({ index: 0, type: "i32" }).mem("i32.load");
  m.func("ld_f32", ["i32"], ["f32"]).get({ index: 0, type: "i32" }).mem("f32.load");
  m.func("ld_f64", ["i32"], ["f64"]).get({ index: 0, type: "i32" }).mem("f64.load");
  const st = m.func("st_f32", ["i32", "f32"], []);
  st.get(st.param(0)).get(st.param(1)).mem("f32.store");
}

/** Emits sm_fwd, sm_bwd, sm_bwd_set, ce_row and the scalar accessors into `m`. */
export function emitSoftmax(m: ModuleBuilder): void {
  emitForward(m);
  emitBackward(m, true);
  emitBackward(m, false);
  emitCrossEntropyRow(m);
  emitAccessors(m);
}
