// Reference storage conversions between f32 and the 16-bit float formats (f16, bf16), using the
// scalar conversions of tensor/dtype.ts (round to nearest even; NaN stays NaN; f16 overflow gives
// Inf). 16-bit data is passed as raw Uint16Array bits. Same-format conversion is a copy; f16 <->
// bf16 goes through f32, which is exact on the way in, so only one rounding happens.

import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../tensor/dtype.js";

export type FloatStorage = "f32" | "f16" | "bf16";

export function convert(
  out: Float32Array | Uint16Array,
  outType: FloatStorage,
  inp: Float32Array | Uint16Array,
  inpType: FloatStorage,
): void {
  const n = out.length;
  if (outType === inpType) {
    out.set(inp);
    return;
  }
  const toF32 = inpType === "f16" ? f16ToF32 : inpType === "bf16" ? bf16ToF32 : null;
  const fromF32 = outType === "f16" ? f32ToF16 : outType === "bf16" ? f32ToBf16 : null;
  for (let i = 0; i < n; i++) {
    const value = toF32 === null ? inp[i] : toF32(inp[i]);
    out[i] = fromF32 === null ? value : fromF32(value);
  }
}
