// f32 <-> f16 <-> bf16 conversions (src/tensor/dtype.ts scalars and src/kernels/ref/convert.ts)
// vs numpy / torch (fixture from scripts/fixtures/make_dtype_cases.py): rounding ties,
// subnormals, overflow, NaN, Inf, -0, and every one of the 65536 16-bit patterns decoded.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { convert } from "../../src/kernels/ref/convert.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/tensor/dtype.js";

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/dtype_cases.json", import.meta.url), "utf8"),
) as {
  f32_bits: number[];
  f16_bits: number[];
  bf16_bits: number[];
  decode_sample: number[];
  f16_decoded_sample_bits: number[];
  bf16_decoded_sample_bits: number[];
  f16_decoded_sha256: string;
  bf16_decoded_sha256: string;
};

const inputs = new Float32Array(new Uint32Array(fixture.f32_bits).buffer);
const hex = (x: number) => `0x${x.toString(16).padStart(4, "0")}`;

function isNan16(bits: number, exponentMask: number, mantissaMask: number): boolean {
  return (bits & exponentMask) === exponentMask && (bits & mantissaMask) !== 0;
}

/** Compares 16-bit encodings exactly, except that any NaN matches any NaN of the same sign. */
function expectBits(
  actual: number[],
  expected: number[],
  nan: (b: number) => boolean,
  label: string,
): void {
  const bad: string[] = [];
  for (let i = 0; i < expected.length; i++) {
    const ok = nan(expected[i]) ? nan(actual[i]) : actual[i] === expected[i];
    if (!ok)
      bad.push(
        `[${i}] f32 ${inputs[i]} (bits ${fixture.f32_bits[i].toString(16)}): got ${hex(actual[i])}, expected ${hex(expected[i])}`,
      );
  }
  expect(bad, label).toEqual([]);
}

const f16Nan = (b: number) => isNan16(b, 0x7c00, 0x03ff);
const bf16Nan = (b: number) => isNan16(b, 0x7f80, 0x007f);

function decodeAll(decode: (bits: number) => number): Float32Array {
  const out = new Float32Array(65536);
  for (let b = 0; b < 65536; b++) {
    const v = decode(b);
    out[b] = Number.isNaN(v) ? Number.NaN : v; // canonical NaN, as the generator's digest
  }
  return out;
}

function sha256(a: Float32Array): string {
  return createHash("sha256")
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest("hex");
}

describe("f32 -> 16-bit rounding vs numpy/torch", () => {
  test("f32ToF16 (numpy float16)", () => {
    expectBits(Array.from(inputs, f32ToF16), fixture.f16_bits, f16Nan, "f16");
  });
  test("f32ToBf16 (torch bfloat16)", () => {
    expectBits(Array.from(inputs, f32ToBf16), fixture.bf16_bits, bf16Nan, "bf16");
  });
  test("convert kernel f32 -> f16 / bf16 on arrays", () => {
    const f16 = new Uint16Array(inputs.length);
    convert(f16, "f16", inputs, "f32");
    expectBits(Array.from(f16), fixture.f16_bits, f16Nan, "convert f16");
    const bf16 = new Uint16Array(inputs.length);
    convert(bf16, "bf16", inputs, "f32");
    expectBits(Array.from(bf16), fixture.bf16_bits, bf16Nan, "convert bf16");
  });
});

describe("16-bit -> f32 decoding vs numpy/torch, all 65536 patterns", () => {
  test("f16ToF32", () => {
    const all = decodeAll(f16ToF32);
    const bits = new Uint32Array(all.buffer);
    fixture.decode_sample.forEach((b, i) => {
      const expected = fixture.f16_decoded_sample_bits[i];
      if ((expected & 0x7f800000) === 0x7f800000 && (expected & 0x7fffff) !== 0)
        expect(Number.isNaN(all[b])).toBe(true);
      else expect(bits[b], `f16 ${hex(b)}`).toBe(expected);
    });
    expect(sha256(all)).toBe(fixture.f16_decoded_sha256);
  });
  test("bf16ToF32", () => {
    const all = decodeAll(bf16ToF32);
    expect(sha256(all)).toBe(fixture.bf16_decoded_sha256);
  });
});

describe("convert kernel between 16-bit formats", () => {
  test("f16 -> bf16 rounds once (via exact f32), bf16 -> f16 likewise; same format copies", () => {
    const f16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const bf16 = new Uint16Array(65536);
    convert(bf16, "bf16", f16, "f16");
    for (let i = 0; i < 65536; i += 97) {
      const expected = f32ToBf16(f16ToF32(i));
      if (bf16Nan(expected)) expect(bf16Nan(bf16[i])).toBe(true);
      else expect(bf16[i]).toBe(expected);
    }
    const back = new Uint16Array(65536);
    convert(back, "f16", bf16, "bf16");
    expect(back[0x3c00]).toBe(0x3c00); // 1.0 survives both ways
    const copy = new Uint16Array(65536);
    convert(copy, "f16", f16, "f16");
    expect(copy).toEqual(f16);
    const f32 = new Float32Array(3);
    convert(f32, "f32", Uint16Array.of(0x3c00, 0xc000, 0x7c00), "f16");
    expect(Array.from(f32)).toEqual([1, -2, Infinity]);
  });
});
