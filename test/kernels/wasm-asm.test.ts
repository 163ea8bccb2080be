// The WebAssembly assembler: LEB128 encodings against the worked examples of the DWARF/Wasm specs
// (624485 unsigned -> e5 8e 26; -123456 signed -> c0 bb 78), and a small module that the runtime
// validates and runs (a loop summing i32s from shared memory, and an f32x4 product).

import { describe, expect, test } from "vitest";
import {
  ModuleBuilder,
  signedLeb,
  simdSupported,
  unsignedLeb,
} from "../../src/kernels/wasm/asm.js";

function leb(fn: (v: number, out: number[]) => void, v: number): number[] {
  const out: number[] = [];
  fn(v, out);
  return out;
}

describe("asm", () => {
  test("LEB128", () => {
    expect(leb(unsignedLeb, 0)).toEqual([0]);
    expect(leb(unsignedLeb, 127)).toEqual([0x7f]);
    expect(leb(unsignedLeb, 128)).toEqual([0x80, 0x01]);
    expect(leb(unsignedLeb, 624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(leb(signedLeb, -1)).toEqual([0x7f]);
    expect(leb(signedLeb, 63)).toEqual([0x3f]);
    expect(leb(signedLeb, 64)).toEqual([0xc0, 0x00]);
    expect(leb(signedLeb, -64)).toEqual([0x40]);
    expect(leb(signedLeb, -65)).toEqual([0xbf, 0x7f]);
    expect(leb(signedLeb, -123456)).toEqual([0xc0, 0xbb, 0x78]);
  });

  test("a module with a loop and SIMD runs on shared memory", () => {
    expect(simdSupported()).toBe(true);
    const m = new ModuleBuilder({ minimumPages: 1, maximumPages: 2, shared: true });
    // sum(ptr, n): sum of n i32 at ptr
    const sum = m.func("sum", ["i32", "i32"], ["i32"]);
    const [ptr, n] = sum.params;
    const acc = sum.local("i32");
    sum.block().get(n).op("i32.eqz").brIf(0).loop();
    sum.get(acc).get(ptr).mem("i32.load").op("i32.add").set(acc);
    sum.addTo(ptr, 4).get(n).i32(1).op("i32.sub").tee(n).brIf(0);
    sum.end().end().get(acc);
    // mul4(dst, a, b): dst[0..4) = a[0..4) * b[0..4) as f32x4
    const mul4 = m.func("mul4", ["i32", "i32", "i32"], []);
    const [dst, a, b] = mul4.params;
    mul4
      .get(dst)
      .get(a)
      .simdMem("v128.load")
      .get(b)
      .simdMem("v128.load")
      .simd("f32x4.mul")
      .simdMem("v128.store");
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });
    const ex = new WebAssembly.Instance(new WebAssembly.Module(m.encode()), { env: { memory } })
      .exports as {
      sum(p: number, n: number): number;
      mul4(d: number, a: number, b: number): void;
    };
    new Int32Array(memory.buffer, 64, 5).set([1, -2, 300000, 4, 5]);
    expect(ex.sum(64, 5)).toBe(300008);
    expect(ex.sum(64, 0)).toBe(0);
    const f = new Float32Array(memory.buffer, 128, 12);
    f.set([1, 2, 3, 4, 0.5, -1, 2, 10], 4);
    ex.mul4(128, 144, 160);
    expect(Array.from(f.subarray(0, 4))).toEqual([0.5, -2, 6, 40]);
  });
});
