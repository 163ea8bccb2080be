// Householder reflector application (qr.ts applyReflector) as WebAssembly SIMD f64x2 code, for
// the QRs of the randomized SVD (LoRA-GA, PiSSA inits: ten QRs of an (m, 4r) basis per module).
// Same algorithm and blocking as the TypeScript version: H_j = I - t v v^T applied to columns
// j+1..k-1 of a column-major (m, k) array, four columns sharing each pass over v; the sums run
// over row pairs (two f64 lanes), so results differ from the TypeScript version in the last bits.
//
// The code runs on a private, non-shared memory: the caller works on view(doubles), a Float64Array
// at byte 0 of it (columns column-major, as qr.ts keeps them), and calls apply(m, k, j, t). Built
// once per process on first use; null when the runtime has no SIMD (the caller then stays in
// TypeScript). When it pays off: qr.ts, SIMD_MIN_DOUBLES; timings in docs/engine-notes.md.

import { ModuleBuilder } from "../kernels/wasm/asm.js";

export interface WasmReflectors {
  /** A Float64Array of at least `doubles` at byte 0 of the module's memory (grown as needed). */
  view(doubles: number): Float64Array;
  /** applyReflector(view, m, k, j, t) of qr.ts on the current view. */
  apply(m: number, k: number, j: number, t: number): void;
}

const PAGE = 65536;
const MAX_PAGES = 32768; // 2 GiB of address space, reserved lazily by the runtime

let cached: WasmReflectors | null | undefined;

/** The SIMD reflector, built on first use; null when this runtime cannot validate it. */
export function wasmReflectors(): WasmReflectors | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    const bytes = emitModule();
    if (!WebAssembly.validate(bytes)) return null;
    const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    const apply = instance.exports.apply_reflector as (
      m: number,
      k: number,
      j: number,
      t: number,
    ) => void;
    let view = new Float64Array(memory.buffer);
    cached = {
      view(doubles) {
        const bytesNeeded = doubles * 8;
        if (memory.buffer.byteLength < bytesNeeded)
          memory.grow(Math.ceil((bytesNeeded - memory.buffer.byteLength) / PAGE));
        if (view.buffer !== memory.buffer) view = new Float64Array(memory.buffer);
        return view;
      },
      apply,
    };
  } catch {
    cached = null;
  }
  return cached;
}

/** apply_reflector(m, k, j, t): the columns live at byte 0 of the memory, m doubles each. */
function emitModule(): Uint8Array<ArrayBuffer> {
  const mod = new ModuleBuilder({ minimumPages: 1, maximumPages: MAX_PAGES, shared: false });
  const f = mod.func("apply_reflector", ["i32", "i32", "i32", "f64"], []);
  const [m, k, j, t] = f.params;
  const colBytes = f.local("i32"); // m * 8
  const cj = f.local("i32"); // column j (holds v below the diagonal)
  const lo = f.local("i32"); // byte offset of row j+1
  const pairEnd = f.local("i32"); // rows [lo, pairEnd) go two at a time
  const jOff = f.local("i32"); // byte offset of row j
  const c = f.local("i32");
  const r = f.local("i32");
  const o = [f.local("i32"), f.local("i32"), f.local("i32"), f.local("i32")];
  const acc = [f.local("v128"), f.local("v128"), f.local("v128"), f.local("v128")];
  const d = [f.local("f64"), f.local("f64"), f.local("f64"), f.local("f64")];
  const x = f.local("v128");
  const xs = f.local("f64");

  f.get(m).i32(3).op("i32.shl").set(colBytes);
  f.get(j).get(colBytes).op("i32.mul").set(cj);
  f.get(j).i32(3).op("i32.shl").tee(jOff).i32(8).op("i32.add").set(lo);
  // pairEnd = lo + ((colBytes - lo) & ~15): the rows after it (at most one) go one at a time
  f.get(lo).get(colBytes).get(lo).op("i32.sub").i32(-16).op("i32.and").op("i32.add").set(pairEnd);
  f.get(j).i32(1).op("i32.add").set(c);

  /** Applies the reflector to `w` columns starting at column c (o[0..w) set by the caller). */
  const columns = (w: number): void => {
    for (let q = 0; q < w; q++) f.f32(0).simd("f32x4.splat").set(acc[q]);
    // d_q = col_q[j] + sum_{i > j} v_i col_q[i]
    f.get(lo).set(r);
    f.block().get(r).get(pairEnd).op("i32.ge_u").brIf(0).loop();
    f.get(cj).get(r).op("i32.add").simdMem("v128.load").set(x);
    for (let q = 0; q < w; q++) {
      f.get(acc[q])
        .get(x)
        .get(o[q])
        .get(r)
        .op("i32.add")
        .simdMem("v128.load")
        .simd("f64x2.mul")
        .simd("f64x2.add")
        .set(acc[q]);
    }
    f.get(r).i32(16).op("i32.add").tee(r).get(pairEnd).op("i32.lt_u").brIf(0);
    f.end().end();
    for (let q = 0; q < w; q++) {
      f.get(o[q]).get(jOff).op("i32.add").mem("f64.load");
      f.get(acc[q]).simdLane("f64x2.extract_lane", 0).op("f64.add");
      f.get(acc[q]).simdLane("f64x2.extract_lane", 1).op("f64.add").set(d[q]);
    }
    f.block().get(r).get(colBytes).op("i32.ge_u").brIf(0); // the odd last row
    f.get(cj).get(r).op("i32.add").mem("f64.load").set(xs);
    for (let q = 0; q < w; q++)
      f.get(d[q])
        .get(xs)
        .get(o[q])
        .get(r)
        .op("i32.add")
        .mem("f64.load")
        .op("f64.mul")
        .op("f64.add")
        .set(d[q]);
    f.end();
    // f_q = t d_q; col_q[j] -= f_q; col_q[i] -= f_q v_i
    for (let q = 0; q < w; q++) {
      f.get(t).get(d[q]).op("f64.mul").set(d[q]);
      f.get(o[q]).get(jOff).op("i32.add");
      f.get(o[q]).get(jOff).op("i32.add").mem("f64.load").get(d[q]).op("f64.sub").mem("f64.store");
      f.get(d[q]).simd("f64x2.splat").set(acc[q]);
    }
    f.get(lo).set(r);
    f.block().get(r).get(pairEnd).op("i32.ge_u").brIf(0).loop();
    f.get(cj).get(r).op("i32.add").simdMem("v128.load").set(x);
    for (let q = 0; q < w; q++) {
      f.get(o[q]).get(r).op("i32.add");
      f.get(o[q])
        .get(r)
        .op("i32.add")
        .simdMem("v128.load")
        .get(acc[q])
        .get(x)
        .simd("f64x2.mul")
        .simd("f64x2.sub");
      f.simdMem("v128.store");
    }
    f.get(r).i32(16).op("i32.add").tee(r).get(pairEnd).op("i32.lt_u").brIf(0);
    f.end().end();
    f.block().get(r).get(colBytes).op("i32.ge_u").brIf(0);
    f.get(cj).get(r).op("i32.add").mem("f64.load").set(xs);
    for (let q = 0; q < w; q++) {
      f.get(o[q]).get(r).op("i32.add");
      f.get(o[q])
        .get(r)
        .op("i32.add")
        .mem("f64.load")
        .get(d[q])
        .get(xs)
        .op("f64.mul")
        .op("f64.sub")
        .mem("f64.store");
    }
    f.end();
  };

  // four columns at a time while c + 4 <= k
  f.block().loop();
  f.get(c).i32(4).op("i32.add").get(k).op("i32.gt_u").brIf(1);
  f.get(c).get(colBytes).op("i32.mul").set(o[0]);
  for (let q = 1; q < 4; q++)
    f.get(o[q - 1])
      .get(colBytes)
      .op("i32.add")
      .set(o[q]);
  columns(4);
  f.get(c).i32(4).op("i32.add").set(c);
  f.br(0);
  f.end().end();
  // then one at a time
  f.block().get(c).get(k).op("i32.ge_u").brIf(0).loop();
  f.get(c).get(colBytes).op("i32.mul").set(o[0]);
  columns(1);
  f.get(c).i32(1).op("i32.add").tee(c).get(k).op("i32.lt_u").brIf(0);
  f.end().end();
  return mod.encode();
}
