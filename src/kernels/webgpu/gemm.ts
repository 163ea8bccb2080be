// GEMM on WebGPU: out (batch, M, N) = alpha op(a) op(b) [+ alpha2 op(pa) op(pb)] [+ out], every
// MatmulOptions case (kernels.ts). One workgroup computes a BM x BN tile of out; each of its
// TX x TY invocations holds 4 x 4 outputs in registers, at rows ty + r*TY and columns tx + c*TX
// of the tile, so that the invocations of a row of the workgroup read consecutive words of the
// shared B tile. K advances in steps of BK: the workgroup loads a BM x BK slice of op(a) and a
// BK x BN slice of op(b) into workgroup memory, both stored k-major (As[k][i], Bs[k][j]); the
// transposes are resolved in those loads (each picks the thread-to-element order that reads
// consecutive addresses of its operand), so every layout runs the same inner loop of 16 FMAs per
// 8 shared reads. The fused term (MatmulOptions.plus) is a second K loop into its own
// accumulators before the one write of the tile. Causal structure (MatmulCausal) is skipped a
// block at a time: maskOut tiles wholly above the diagonal run no K loop, lowerA stops K past the
// tile's last diagonal, upperA skips K blocks left of its first one.

import type { MatmulCausal } from "../kernels.js";
import type { ShaderSpec } from "./dispatch.js";

export interface GemmVariant {
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
  causal: MatmulCausal["kind"] | null;
  /** The fused term's transposes, or null without one. */
  plus: { transA: boolean; transB: boolean } | null;
  /** Invocations per workgroup along x (columns) and y (rows); BN = 4 TX, BM = 4 TY. */
  tx: number;
  ty: number;
}

export const GEMM_BK = 16;

/**
 * WGSL that loads the tile slice of operand `buf` at k0 into workgroup array `dst` (k-major,
 * `span` = BM or BN wide). `rowMajorK`: the operand's element (x, k) is at x*K + k (else k*X + x).
 */
function loadTile(
  dst: string,
  buf: string,
  base: string,
  span: string,
  first: string,
  extent: string,
  kTotal: string,
  rowMajorK: boolean,
): string {
  // consecutive invocations take consecutive addresses of the operand
  const [x, kk] = rowMajorK ? ["e / BK", "e % BK"] : [`e % ${span}`, `e / ${span}`];
  const index = rowMajorK ? `(${first} + x) * ${kTotal} + k` : `k * ${extent} + ${first} + x`;
  return `
    for (var t = 0u; t < ${span} * BK / NT; t++) {
      let e = lid + t * NT;
      let x = ${x};
      let kk = ${kk};
      let k = k0 + kk;
      var v = 0.0;
      if (${first} + x < ${extent} && k < ${kTotal}) { v = ${buf}[${base} + ${index}]; }
      ${dst}[kk * ${span} + x] = v;
    }`;
}

function kLoop(acc: string): string {
  return `
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { av[r] = As[kk * BM + ly + r * TY]; }
      for (var c = 0u; c < 4u; c++) { bv[c] = Bs[kk * BN + lx + c * TX]; }
      for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) { ${acc}[r * 4u + c] = fma(av[r], bv[c], ${acc}[r * 4u + c]); }
      }
    }
    workgroupBarrier();`;
}

/** Causal setup: narrows [kBegin, kEnd) and sets `skipBlock(k0)` per MatmulCausal. */
function causalSetup(kind: GemmVariant["causal"]): string {
  // the largest (row mod period) among this tile's rows
  const maxIq = `
    let rowLast = min(row0 + BM, p.m) - 1u;
    var maxIq = rowLast % p.period;
    if (row0 / p.period != rowLast / p.period) { maxIq = p.period - 1u; }`;
  if (kind === "maskOut") return `${maxIq}\n    if (col0 > maxIq) { kEnd = 0u; }`;
  if (kind === "lowerA") return `${maxIq}\n    kEnd = min(p.k, maxIq + 1u);`;
  return "";
}

function skipBlock(kind: GemmVariant["causal"]): string {
  if (kind !== "upperA") return "false";
  // upperA (M == period): op(a)[i, k] == 0 where k mod period < i; the block [k0, kLast] is all
  // zero for this tile when it does not wrap a period and its last k mod period < row0
  return "(k0 % p.period) + (min(k0 + BK, p.k) - 1u - k0) < p.period && (min(k0 + BK, p.k) - 1u) % p.period < row0";
}

export function gemmSpec(v: GemmVariant): ShaderSpec {
  const aRowMajorK = !v.transA; // a (M, K): element (i, k) at i*K + k
  const bRowMajorK = v.transB; // b (N, K) when transposed: element (j, k) at j*K + k
  const plus = v.plus;
  const buffers = [
    { name: "out", elem: "f32" as const },
    { name: "a", elem: "f32" as const },
    { name: "b", elem: "f32" as const },
    ...(plus === null
      ? []
      : [
          { name: "pa", elem: "f32" as const },
          { name: "pb", elem: "f32" as const },
        ]),
  ];
  const plusLoop =
    plus === null
      ? ""
      : `
  var acc2: array<f32, 16>;
  for (var k0 = 0u; k0 < p.k2; k0 += BK) {
    ${loadTile("As", "pa", "p.pa_off", "BM", "row0", "p.m", "p.k2", !plus.transA)}
    ${loadTile("Bs", "pb", "p.pb_off", "BN", "col0", "p.n", "p.k2", plus.transB)}
    ${kLoop("acc2")}
  }`;
  const value =
    plus === null
      ? "p.alpha * acc[r * 4u + c]"
      : "p.alpha * acc[r * 4u + c] + p.alpha2 * acc2[r * 4u + c]";
  const body = `
const TX = ${v.tx}u;
const TY = ${v.ty}u;
const BM = 4u * TY;
const BN = 4u * TX;
const BK = ${GEMM_BK}u;
const NT = TX * TY;
var<workgroup> As: array<f32, BK * BM>;
var<workgroup> Bs: array<f32, BK * BN>;

@compute @workgroup_size(TX, TY, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u) {
  let lx = lid3.x;
  let ly = lid3.y;
  let lid = ly * TX + lx;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let z = wid.z;
  let aBase = p.a_off + z * p.m * p.k;
  let bBase = p.b_off + z * p.bStride;
  var kBegin = 0u;
  var kEnd = p.k;
  ${causalSetup(v.causal)}
  var acc: array<f32, 16>;
  for (var k0 = kBegin; k0 < kEnd; k0 += BK) {
    if (${skipBlock(v.causal)}) { continue; }
    ${loadTile("As", "a", "aBase", "BM", "row0", "p.m", "p.k", aRowMajorK)}
    ${loadTile("Bs", "b", "bBase", "BN", "col0", "p.n", "p.k", bRowMajorK)}
    ${kLoop("acc")}
  }
  ${plusLoop}
  let oBase = p.out_off + z * p.m * p.n;
  for (var r = 0u; r < 4u; r++) {
    let i = row0 + ly + r * TY;
    for (var c = 0u; c < 4u; c++) {
      let j = col0 + lx + c * TX;
      if (i < p.m && j < p.n) {
        var v = ${value};
        ${v.accumulate ? "v += out[oBase + i * p.n + j];" : ""}
        ${v.causal === "maskOut" ? "if (j > i % p.period) { v = 0.0; }" : ""}
        out[oBase + i * p.n + j] = v;
      }
    }
  }
}
`;
  return {
    name: `gemm ${v.transA ? "T" : "N"}${v.transB ? "T" : "N"}${v.accumulate ? " acc" : ""}${v.causal ?? ""}${plus === null ? "" : " plus"}`,
    buffers,
    params: [
      { name: "m", type: "u32" },
      { name: "n", type: "u32" },
      { name: "k", type: "u32" },
      { name: "k2", type: "u32" },
      { name: "bStride", type: "u32" },
      { name: "period", type: "u32" },
      { name: "alpha", type: "f32" },
      { name: "alpha2", type: "f32" },
    ],
    body,
  };
}
