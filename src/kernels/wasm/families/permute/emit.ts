// Code generation of permute0213 (out (A, C, B, D) = inp (A, B, C, D), see kernels/ref/permute.ts)
// as a WebAssembly SIMD128 block copy (the per-thread job that runs it: job.ts).
//
//   perm_copy(dst, src, rows, d, srcStride): copies `rows` rows of d floats, read srcStride bytes
//       apart from src and written one after the other from dst; 4 floats at a time, the last
//       d % 4 one at a time (bits copied as they are, NaN payloads included).
//
// Also used alone by the embedding family (one call per gathered row).

import type { ModuleBuilder } from "../../asm.js";

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
