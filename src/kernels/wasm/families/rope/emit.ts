// Code generation of the rotary embedding (kernels/ref/rope.ts: rotate-half layout, x (B, T, H, D),
// cos/sin (T, D/2)) and its backward as WebAssembly SIMD128 functions (the per-thread job that
// runs them over chunks of (b, t) rows: job.ts).
//
//   rope_fwd / rope_bwd / rope_bwd_set(out, inp, cos, sin, rows, t0, time, heads, half): for `rows` consecutive
//       (b, t) rows of heads * 2 half floats, the first at time t0 (t wraps to 0 after time - 1):
//       rope_fwd  out[i] = x[i] c - x[i+half] s;  out[i+half] = x[i+half] c + x[i] s
//       rope_bwd  out[i] += x[i] c + x[i+half] s; out[i+half] += x[i+half] c - x[i] s  (R(-theta))
//       rope_bwd_set  the same with = (out is never read)
//       with c, s = cos, sin[t, i]; 4 pairs at a time, the last half % 4 one at a time. Every pair
//       is read before it is written, so out may be inp itself (not a partial overlap).
// f32 arithmetic (the reference evaluates each output in f64 and rounds once).

import type { Local, ModuleBuilder } from "../../asm.js";

/** Emits one of rope_fwd / rope_bwd / rope_bwd_set (see the header). */
function emitRows(m: ModuleBuilder, kind: "fwd" | "bwd" | "bwd_set"): void {
  const f = m.func(
    `rope_${kind}`,
    ["i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    [],
  );
  const backward = kind !== "fwd";
  const accumulate = kind === "bwd";
  const [out, inp, cos, sin, rows, t0, time, heads, half] = f.params;
  const halfBytes = f.local("i32");
  const vecEnd = f.local("i32"); // bytes of a half handled 16 at a time
  const t = f.local("i32");
  const r = f.local("i32");
  const h = f.local("i32");
  const i = f.local("i32"); // byte offset within the half
  const cr = f.local("i32"); // cos row t
  const sr = f.local("i32"); // sin row t
  const x = f.local("i32"); // the head's first float in inp
  const o = f.local("i32"); // ... in out
  const [c, s, x1, x2, y1, y2] = Array.from({ length: 6 }, () => f.local("v128"));
  const pairs = (width: 4 | 1, end: Local): void => {
    const load = (base: Local, second: boolean): void => {
      f.get(base).get(i).op("i32.add");
      if (second) f.get(halfBytes).op("i32.add");
      f.simdMem(width === 4 ? "v128.load" : "v128.load32_zero", 0);
    };
    const store = (second: boolean, value: Local): void => {
      f.get(o).get(i).op("i32.add");
      if (second) f.get(halfBytes).op("i32.add");
      f.get(value);
      if (width === 4) f.simdMem("v128.store", 0);
      else f.simdLane("v128.store32_lane", 0, 0);
    };
    f.block().get(i).get(end).op("i32.ge_u").brIf(0).loop();
    load(cr, false);
    f.set(c);
    load(sr, false);
    f.set(s);
    load(x, false);
    f.set(x1);
    load(x, true);
    f.set(x2);
    if (backward) {
      // y1 = out[i] + (x1 c + x2 s);  y2 = out[i+half] + (x2 c - x1 s)  (no out[...] when overwriting)
      if (accumulate) load(o, false);
      f.get(x1).get(c).simd("f32x4.mul").get(x2).get(s).simd("f32x4.mul").simd("f32x4.add");
      if (accumulate) f.simd("f32x4.add");
      f.set(y1);
      if (accumulate) load(o, true);
      f.get(x2).get(c).simd("f32x4.mul").get(x1).get(s).simd("f32x4.mul").simd("f32x4.sub");
      if (accumulate) f.simd("f32x4.add");
      f.set(y2);
    } else {
      f.get(x1).get(c).simd("f32x4.mul").get(x2).get(s).simd("f32x4.mul").simd("f32x4.sub").set(y1);
      f.get(x2).get(c).simd("f32x4.mul").get(x1).get(s).simd("f32x4.mul").simd("f32x4.add").set(y2);
    }
    store(false, y1);
    store(true, y2);
    f.addTo(i, 4 * width);
    f.get(i).get(end).op("i32.lt_u").brIf(0);
    f.end().end();
  };
  f.get(half).i32(2).op("i32.shl").tee(halfBytes).i32(-16).op("i32.and").set(vecEnd);
  f.get(t0).set(t).get(inp).set(x).get(out).set(o);
  f.block().get(rows).op("i32.eqz").brIf(0).loop(); // (b, t) rows
  f.get(cos).get(t).get(halfBytes).op("i32.mul").op("i32.add").set(cr);
  f.get(sin).get(t).get(halfBytes).op("i32.mul").op("i32.add").set(sr);
  f.i32(0).set(h);
  f.block().get(heads).op("i32.eqz").brIf(0).loop(); // heads
  f.i32(0).set(i);
  pairs(4, vecEnd);
  pairs(1, halfBytes);
  f.addTo(x, halfBytes).addTo(x, halfBytes).addTo(o, halfBytes).addTo(o, halfBytes);
  f.addTo(h, 1);
  f.get(h).get(heads).op("i32.lt_u").brIf(0);
  f.end().end();
  // t = t + 1 == time ? 0 : t + 1
  f.addTo(t, 1);
  f.i32(0).get(t).get(t).get(time).op("i32.eq").op("select").set(t);
  f.addTo(r, 1);
  f.get(r).get(rows).op("i32.lt_u").brIf(0);
  f.end().end();
}

/** Emits rope_fwd, rope_bwd and rope_bwd_set into `m`. */
export function emitRope(m: ModuleBuilder): void {
  emitRows(m, "fwd");
  emitRows(m, "bwd");
  emitRows(m, "bwd_set");
}
