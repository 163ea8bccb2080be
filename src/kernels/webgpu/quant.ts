// Expanding a quantized frozen weight on the device (Kernels.dequantize; the formula is
// QuantCodes' in kernels.ts, the host's is quant/int8.ts and quant/nf4.ts): one invocation per
// weight element i of n, a grid-stride loop. The codes are a u8 tensor, read here as the u32 words
// of the mirror: byte b of the tensor is bits 8 (b % 4) .. 8 (b % 4) + 7 of word b / 4 (the heap
// is little-endian, and a tensor starts on a word). Each value is one f32 multiply of a code that
// f32 holds exactly by an f32 scale, as on the host, so the two expansions are bit-identical
// (where the device keeps subnormal products; WGSL lets it flush them to zero).

import { NF4_CODE } from "../../quant/nf4.js";
import type { QuantCodes } from "../kernels.js";
import type { ShaderSpec } from "./dispatch.js";
import { WG } from "./elementwise.js";

/** The 16 NF4 values as f32 bit patterns, so the shader's table is exactly the host's. */
function nf4Table(): string {
  const bits = new Uint32Array(NF4_CODE.buffer, NF4_CODE.byteOffset, NF4_CODE.length);
  const words = Array.from(bits, (b) => `0x${b.toString(16).padStart(8, "0")}u`);
  return `var<private> NF4_BITS: array<u32, 16> = array<u32, 16>(${words.join(", ")});`;
}

const CODE: Record<QuantCodes["kind"], string> = {
  // byte i, sign-extended
  int8: "let code = f32(extractBits(bitcast<i32>(codes[p.codes_off + i / 4u]), 8u * (i % 4u), 8u));",
  // byte i / 2; the even element in its high nibble
  nf4: `let byte = extractBits(codes[p.codes_off + i / 8u], 8u * ((i / 2u) % 4u), 8u);
    let code = bitcast<f32>(NF4_BITS[select(byte & 15u, byte >> 4u, i % 2u == 0u)]);`,
};

/** out (n, f32) = code(i) * scales[i / blocksize]. */
export function dequantizeSpec(kind: QuantCodes["kind"]): ShaderSpec {
  return {
    name: `dequantize ${kind}`,
    buffers: [
      { name: "out", elem: "f32" },
      { name: "codes", elem: "u32" },
      { name: "scales", elem: "f32" },
    ],
    params: [
      { name: "n", type: "u32" },
      { name: "blocksize", type: "u32" },
    ],
    body: `${kind === "nf4" ? nf4Table() : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let stride = groups.x * ${WG}u;
  for (var i = gid.x; i < p.n; i += stride) {
    ${CODE[kind]}
    out[p.out_off + i] = code * scales[p.scales_off + i / p.blocksize];
  }
}
`,
  };
}
