// Code generation of permute0213 (out (A, C, B, D) = inp (A, B, C, D), see kernels/ref/permute.ts)
// as a WebAssembly SIMD128 block copy, and the per-thread job that runs it over chunks.
//
//   perm_copy(dst, src, rows, d, srcStride): copies `rows` rows of d floats, read srcStride bytes
//       apart from src and written one after the other from dst; 4 floats at a time, the last
//       d % 4 one at a time (bits copied as they are, NaN payloads included).
//
// The job numbers the rows of out r = (ia C + ic) B + ib (A C B rows of D floats); chunk k covers
// rows [k rowsPerChunk, ...), cut into runs of equal (ia, ic), each one perm_copy call: the rows of
// a run are contiguous in out and C D floats apart in inp. Each thread writes whole contiguous
// stretches of out (cutting by output keeps the threads' written cache lines apart: cut by input,
// two threads wrote interleaved rows and 2 threads ran slower than 1). out must not overlap inp.

import type { ModuleBuilder } from "./asm.js";
import type { CONTROL } from "./pool.js";

/** Offsets of the permute job arguments, in i32 slots from the control block's `args`. */
export const PERM_ARG = { out: 0, inp: 1, a: 2, b: 3, c: 4, d: 5, rowsPerChunk: 6 } as const;

/** Emits perm_copy into `m`. */
export function emitPermute(m: ModuleBuilder): void {
  const f = m.func("perm_copy", ["i32", "i32", "i32", "i32", "i32"], []);
  const [dst, src, rows, d, srcStride] = f.params;
  const vecEnd = f.local("i32"); // bytes of a row copied 16 at a time
  const rowEnd = f.local("i32"); // bytes of a row
  const k = f.local("i32");
  const j = f.local("i32");
  f.get(d).i32(2).op("i32.shl").tee(rowEnd).i32(-16).op("i32.and").set(vecEnd);
  f.block().get(rows).op("i32.eqz").brIf(0).loop(); // rows
  f.i32(0).set(j);
  f.block().get(j).get(vecEnd).op("i32.ge_u").brIf(0).loop();
  f.get(dst)
    .get(j)
    .op("i32.add")
    .get(src)
    .get(j)
    .op("i32.add")
    .simdMem("v128.load", 0)
    .simdMem("v128.store", 0);
  f.addTo(j, 16);
  f.get(j).get(vecEnd).op("i32.lt_u").brIf(0);
  f.end().end();
  f.block().get(j).get(rowEnd).op("i32.ge_u").brIf(0).loop();
  f.get(dst).get(j).op("i32.add").get(src).get(j).op("i32.add").mem("i32.load").mem("i32.store");
  f.addTo(j, 4);
  f.get(j).get(rowEnd).op("i32.lt_u").brIf(0);
  f.end().end();
  f.addTo(src, srcStride).addTo(dst, rowEnd).addTo(k, 1);
  f.get(k).get(rows).op("i32.lt_u").brIf(0);
  f.end().end();
}

/**
 * Runs thread `thread`'s part of a permute0213 job (PERM_ARG layout). Self-contained: shipped to
 * workers as source text (see gemm-driver.ts), hence the literal offsets.
 */
export function permuteThreadJob(
  ex: { [name: string]: (...args: number[]) => void },
  ctl: Int32Array,
  _ctlF32: Float32Array,
  layout: typeof CONTROL,
  _thread: number,
  forEachChunk: (work: (chunk: number) => void) => void,
): void {
  const g = layout.args;
  const out = ctl[g + 0] >>> 0;
  const inp = ctl[g + 1] >>> 0;
  const b = ctl[g + 3];
  const c = ctl[g + 4];
  const d = ctl[g + 5];
  const perChunk = ctl[g + 6];
  const total = ctl[g + 2] * b * c;
  const copy = ex.perm_copy;
  forEachChunk((k) => {
    const r1 = Math.min(total, (k + 1) * perChunk);
    let r = k * perChunk;
    while (r < r1) {
      const ib = r % b;
      const ac = (r - ib) / b; // ia * c + ic
      const ic = ac % c;
      const ia = (ac - ic) / c;
      const n = Math.min(r1 - r, b - ib);
      copy(out + r * d * 4, inp + ((ia * b + ib) * c + ic) * d * 4, n, d, c * d * 4);
      r += n;
    }
  });
}
