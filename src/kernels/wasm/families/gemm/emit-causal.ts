// The output mask of causal GEMMs (MatmulOptions.causal "maskOut", kernels.ts): after the driver
// computed the needed columns of a block of C, gemm_mask_causal zeroes every element above the
// causal diagonal, one memory.fill per row.
//
// gemm_mask_causal(c, ldc, rows, row0, period, jc, nc): C block of `rows` rows starting at row
// `row0` of its (M, N) matrix, columns [jc, jc + nc), row r at c + r*ldc bytes (c points at column
// jc). Row i = row0 + r keeps columns j <= i mod period; columns j > i mod period in [jc, jc + nc)
// become 0.

import type { ModuleBuilder } from "../../asm.js";

export interface GemmCausalExports {
  gemm_mask_causal(
    c: number,
    ldc: number,
    rows: number,
    row0: number,
    period: number,
    jc: number,
    nc: number,
  ): void;
}

export function emitGemmCausal(m: ModuleBuilder): void {
  const f = m.func("gemm_mask_causal", ["i32", "i32", "i32", "i32", "i32", "i32", "i32"], []);
  const [c, ldc, rows, row0, period, jc, nc] = f.params;
  const r = f.local("i32");
  const first = f.local("i32"); // first zeroed column, relative to jc
  f.i32(0).set(r);
  f.block();
  f.get(rows).op("i32.eqz").brIf(0);
  f.loop();
  // first = clamp((row0 + r) % period + 1 - jc, 0, nc)
  f.get(row0)
    .get(r)
    .op("i32.add")
    .get(period)
    .op("i32.rem_u")
    .i32(1)
    .op("i32.add")
    .get(jc)
    .op("i32.sub")
    .set(first);
  f.i32(0).get(first).get(first).i32(0).op("i32.lt_s").op("select").set(first);
  f.get(nc).get(first).get(first).get(nc).op("i32.gt_s").op("select").set(first);
  // memory.fill(c + r*ldc + 4*first, 0, 4*(nc - first))
  f.get(c)
    .get(r)
    .get(ldc)
    .op("i32.mul")
    .op("i32.add")
    .get(first)
    .i32(2)
    .op("i32.shl")
    .op("i32.add");
  f.i32(0);
  f.get(nc).get(first).op("i32.sub").i32(2).op("i32.shl");
  f.memoryFill();
  f.addTo(r, 1);
  f.get(r).get(rows).op("i32.lt_u").brIf(0);
  f.end().end();
}
