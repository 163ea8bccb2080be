// Layout kernels: rotary embedding (kernels/ref/rope.ts), the axis swap permute0213
// (ref/permute.ts), embedding lookup and its scatter-add (ref/embedding.ts), and conversion
// between f32, f16 and bf16 (ref/convert.ts, tensor/dtype.ts). Elementwise ones use a
// grid-stride loop like elementwise.ts.

import type { ScalarType, ShaderSpec } from "./dispatch.js";
import { WG } from "./elementwise.js";

const f32 = (name: string) => ({ name, elem: "f32" as ScalarType });
const u32 = (name: string) => ({ name, elem: "u32" as ScalarType });

function gridStride(body: string, helpers = ""): string {
  return `${helpers}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let stride = groups.x * ${WG}u;
  for (var q = gid.x; q < p.n; q += stride) {
    ${body}
  }
}
`;
}

/**
 * One invocation per rotated pair (b, t, h, i < D/2) of x (B, T, H, D); n = B T H D/2.
 * Forward: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s); backward (R(-theta)): (d1 c + d2 s, d2 c - d1 s).
 */
export function ropeSpec(backward: boolean, accumulate: boolean): ShaderSpec {
  const [o1, o2] = backward
    ? ["x1 * c + x2 * s", "x2 * c - x1 * s"]
    : ["x1 * c - x2 * s", "x2 * c + x1 * s"];
  const op = accumulate ? "+=" : "=";
  return {
    name: `rope${backward ? " backward" : ""}${accumulate ? " acc" : ""}`,
    buffers: [f32("out"), f32("inp"), f32("cos"), f32("sin")],
    params: [
      { name: "n", type: "u32" },
      { name: "time", type: "u32" },
      { name: "heads", type: "u32" },
      { name: "half", type: "u32" },
    ],
    body: gridStride(`let i = q % p.half;
    let bth = q / p.half;
    let t = (bth / p.heads) % p.time;
    let base = bth * 2u * p.half;
    let c = cos[p.cos_off + t * p.half + i];
    let s = sin[p.sin_off + t * p.half + i];
    let x1 = inp[p.inp_off + base + i];
    let x2 = inp[p.inp_off + base + i + p.half];
    out[p.out_off + base + i] ${op} ${o1};
    out[p.out_off + base + i + p.half] ${op} ${o2};`),
  };
}

/** out (A, C, B, D) = inp (A, B, C, D) with axes 1 and 2 swapped; one invocation per element. */
export const PERMUTE0213: ShaderSpec = {
  name: "permute0213",
  buffers: [f32("out"), f32("inp")],
  params: [
    { name: "n", type: "u32" },
    { name: "b", type: "u32" },
    { name: "c", type: "u32" },
    { name: "d", type: "u32" },
  ],
  body: gridStride(`let id = q % p.d;
    let r = q / p.d;
    let ib = r % p.b;
    let r2 = r / p.b;
    let ic = r2 % p.c;
    let ia = r2 / p.c;
    out[p.out_off + q] = inp[p.inp_off + ((ia * p.b + ib) * p.c + ic) * p.d + id];`),
};

/** Columns [inpCol, +width) of inp (rows, inpCols) into [outCol, +width) of out; q < rows*width. */
export const COPY_COLUMNS: ShaderSpec = {
  name: "copyColumns",
  buffers: [f32("out"), f32("inp")],
  params: [
    { name: "n", type: "u32" },
    { name: "width", type: "u32" },
    { name: "outCols", type: "u32" },
    { name: "outCol", type: "u32" },
    { name: "inpCols", type: "u32" },
    { name: "inpCol", type: "u32" },
  ],
  body: gridStride(`let r = q / p.width;
    let j = q % p.width;
    out[p.out_off + r * p.outCols + p.outCol + j] = inp[p.inp_off + r * p.inpCols + p.inpCol + j];`),
};

/**
 * Sliding-window mask on raw scores (M, Tq, Tk), as the reference (kernels/ref/columns.ts):
 * score (m, i, j) = -1e30 where j < i + Tk - Tq - window + 1; q < M*Tq*Tk.
 */
export const MASK_OUTSIDE_WINDOW: ShaderSpec = {
  name: "maskOutsideWindow",
  buffers: [f32("scores")],
  params: [
    { name: "n", type: "u32" },
    { name: "tq", type: "u32" },
    { name: "tk", type: "u32" },
    { name: "window", type: "u32" },
  ],
  body: gridStride(`let j = i32(q % p.tk);
    let i = i32((q / p.tk) % p.tq);
    if (j < i + i32(p.tk) - i32(p.tq) - i32(p.window) + 1) { scores[p.scores_off + q] = -1e30; }`),
};

/** out (N, C) = table rows at ids (checked on the host); one invocation per element. */
export const EMBEDDING: ShaderSpec = {
  name: "embedding",
  buffers: [f32("out"), f32("table"), { name: "ids", elem: "i32" }],
  params: [
    { name: "n", type: "u32" },
    { name: "cols", type: "u32" },
  ],
  body: gridStride(`let row = u32(ids[p.ids_off + q / p.cols]);
    out[p.out_off + q] = table[p.table_off + row * p.cols + q % p.cols];`),
};

/**
 * dTable[ids[n], c] += dOut[n, c]: one invocation per column c walks the ids in order, so repeated
 * ids add up without atomics and in the reference's order.
 */
export const EMBEDDING_BACKWARD: ShaderSpec = {
  name: "embeddingBackward",
  buffers: [f32("dTable"), f32("dOut"), { name: "ids", elem: "i32" }],
  params: [
    { name: "count", type: "u32" },
    { name: "cols", type: "u32" },
  ],
  body: `
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.cols) { return; }
  for (var n = 0u; n < p.count; n++) {
    let row = u32(ids[p.ids_off + n]);
    dTable[p.dTable_off + row * p.cols + c] += dOut[p.dOut_off + n * p.cols + c];
  }
}
`,
};

export type FloatStorage = "f32" | "f16" | "bf16";

// Bit-exact scalar conversions, the integer algorithms of tensor/dtype.ts: f16 -> f32 exact,
// f32 -> f16 and f32 -> bf16 round to nearest even (f16 with subnormals and overflow to Inf).
const CONVERT_HELPERS = `
fn f16ToF32(h: u32) -> f32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) {
    let v = f32(m) * 5.9604644775390625e-8;
    return select(v, -v, sign != 0u);
  }
  if (e == 0x1fu) { return bitcast<f32>(sign | 0x7f800000u | (m << 13u)); }
  return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}
fn bf16ToF32(h: u32) -> f32 { return bitcast<f32>(h << 16u); }
fn f32ToBf16(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  if ((x & 0x7fffffffu) > 0x7f800000u) { return ((x >> 16u) | 0x40u) & 0xffffu; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}
fn f32ToF16(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let exponent = (x >> 23u) & 0xffu;
  let mantissa = x & 0x7fffffu;
  if (exponent == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u, mantissa != 0u); }
  let e = i32(exponent) - 112;
  if (e >= 0x1f) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    let full = mantissa | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    var m = full >> shift;
    let rest = full & ((1u << shift) - 1u);
    if (rest > half || (rest == half && (m & 1u) == 1u)) { m += 1u; }
    return sign | m;
  }
  var bits = (u32(e) << 10u) | (mantissa >> 13u);
  let rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (bits & 1u) == 1u)) { bits += 1u; }
  return sign | bits;
}
`;

/**
 * out = inp converted; 16-bit tensors are arrays of u32 words holding two elements (low half
 * first). One invocation per pair of elements (2q, 2q + 1), so each output word has one writer;
 * when n is odd the last word keeps its upper half (the next tensor's element).
 */
export function convertSpec(from: FloatStorage, to: FloatStorage): ShaderSpec {
  const load = (e: string): string =>
    from === "f32"
      ? `inp[p.inp_off + ${e}]`
      : `${from}ToF32((inp[p.inp_off + ${e} / 2u] >> (16u * (${e} % 2u))) & 0xffffu)`;
  const body =
    to === "f32"
      ? `let e0 = 2u * q;
    out[p.out_off + e0] = ${load("e0")};
    if (e0 + 1u < p.count) { out[p.out_off + e0 + 1u] = ${load("(e0 + 1u)")}; }`
      : `let e0 = 2u * q;
    let lo = f32To${to === "f16" ? "F16" : "Bf16"}(${load("e0")});
    var hi = out[p.out_off + q] >> 16u;
    if (e0 + 1u < p.count) { hi = f32To${to === "f16" ? "F16" : "Bf16"}(${load("(e0 + 1u)")}); }
    out[p.out_off + q] = lo | (hi << 16u);`;
  return {
    name: `convert ${from} -> ${to}`,
    buffers: [to === "f32" ? f32("out") : u32("out"), from === "f32" ? f32("inp") : u32("inp")],
    params: [
      { name: "n", type: "u32" },
      { name: "count", type: "u32" },
    ],
    body: gridStride(body, CONVERT_HELPERS),
  };
}
