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
// Every case runs one pipeline: the options are uniform parameters (see gemmSpec).
// The subgroup variant (where the device has subgroups) differs in the inner loop: the A
// fragment travels between lanes by subgroupShuffle instead of being read from workgroup memory
// by every lane (subgroupSteps), and A's slice is stored row-major (As[i][k], padded) for it; it
// is correct for any subgroup size, falling back to the plain loop inside the shader where the
// subgroups are not full power-of-two ones.

import type { MatmulCausal } from "../kernels.js";
import type { ShaderSpec } from "./dispatch.js";

/** Invocations per workgroup along x (columns) and y (rows); BN = 4 TX, BM = 4 TY. */
export interface GemmShape {
  tx: number;
  ty: number;
}

/** Bits of the `flags` parameter. */
export const GEMM_FLAGS = {
  transA: 1,
  transB: 2,
  accumulate: 4,
  plusTransA: 8,
  plusTransB: 16,
} as const;

/** Values of the `causal` parameter. */
export const GEMM_CAUSAL: Readonly<Record<MatmulCausal["kind"] | "none", number>> = {
  none: 0,
  maskOut: 1,
  lowerA: 2,
  upperA: 3,
};

const BK = 16;

/**
 * WGSL that loads the tile slice of operand `buf` at k0 into workgroup array `dst`, element
 * (x, kk) at index `at(x, kk)` (aAt or bAt, a WGSL function; `span` = BM or BN). `rowMajorK` (a
 * WGSL bool): the operand's element (x, k) is at x*K + k, else at k*X + x; consecutive
 * invocations take consecutive addresses either way.
 */
function loadTile(
  dst: string,
  at: string,
  buf: string,
  base: string,
  span: string,
  first: string,
  extent: string,
  kTotal: string,
  rowMajorK: string,
): string {
  return `
    for (var t = 0u; t < ${span} * BK / NT; t++) {
      let e = lid + t * NT;
      let x = select(e % ${span}, e / BK, ${rowMajorK});
      let kk = select(e / ${span}, e % BK, ${rowMajorK});
      let k = k0 + kk;
      var v = 0.0;
      if (${first} + x < ${extent} && k < ${kTotal}) {
        v = ${buf}[${base} + select(k * ${extent} + ${first} + x, (${first} + x) * ${kTotal} + k, ${rowMajorK})];
      }
      ${dst}[${at}(x, kk)] = v;
    }`;
}

/** The 16 FMAs of one k step on av (rows) and bv (columns) into `acc`. */
function fmas(acc: string): string {
  return `for (var r = 0u; r < 4u; r++) {
        for (var c = 0u; c < 4u; c++) { ${acc}[r * 4u + c] = fma(av[r], bv[c], ${acc}[r * 4u + c]); }
      }`;
}

/** The K steps of one BK slice, A and B fragments read from workgroup memory. */
function plainSteps(acc: string): string {
  return `for (var kk = 0u; kk < BK; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { av[r] = As[aAt(ly + r * TY, kk)]; }
      for (var c = 0u; c < 4u; c++) { bv[c] = Bs[bAt(lx + c * TX, kk)]; }
      ${fmas(acc)}
    }`;
}

/**
 * The K steps of one BK slice with the A fragment shared through the subgroup: the G lanes of a
 * subgroup that own one row group (same ly) each read the A values of one k of every G (ar), and
 * at step kk take them from lane src0 + (kk mod G) by subgroupShuffle; B is read as in
 * plainSteps. Shared-memory reads of A drop from 4 BK to 4 BK / G per invocation and slice.
 * The G lanes read G consecutive k of one row: A is stored row-major in this variant (aAt), with
 * rows BK + 1 apart so that the two row groups of a 32-lane subgroup hit different banks.
 */
function subgroupSteps(acc: string): string {
  return `for (var j = 0u; j < BK; j += G) {
      var ar: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { ar[r] = As[aAt(ly + r * TY, j + q)]; }
      for (var l = 0u; l < G; l++) {
        let kk = j + l;
        var av: array<f32, 4>;
        var bv: array<f32, 4>;
        for (var r = 0u; r < 4u; r++) { av[r] = subgroupShuffle(ar[r], src0 + l); }
        for (var c = 0u; c < 4u; c++) { bv[c] = Bs[bAt(lx + c * TX, kk)]; }
        ${fmas(acc)}
      }
    }`;
}

function kLoop(acc: string, sg: boolean): string {
  const steps = sg
    ? `if (shuffleA) {
      ${subgroupSteps(acc)}
    } else {
      ${plainSteps(acc)}
    }`
    : plainSteps(acc);
  return `
    workgroupBarrier();
    ${steps}
    workgroupBarrier();`;
}

/**
 * The invocation numbering. Without subgroups: lid from local_invocation_id. With them, where
 * every subgroup is full and its size a power of two (shuffleA): lid = subgroup_id * size + lane,
 * so that the lanes of a subgroup hold consecutive lids, G = min(size, TX) of them per row group
 * (TX and BK are multiples of G); otherwise the plain numbering and plainSteps.
 */
function numbering(sg: boolean): string {
  const plain = "lid3.y * TX + lid3.x";
  if (!sg) return `let lid = ${plain};`;
  return `let shuffleA = sgCount * sgSize == NT && (sgSize & (sgSize - 1u)) == 0u;
  let lid = select(${plain}, sgId * sgSize + sgLane, shuffleA);
  let G = min(sgSize, TX);
  let q = sgLane % G;
  let src0 = sgLane - q;`;
}

/**
 * One pipeline for every MatmulOptions case: the transposes, accumulate and the causal kind are
 * uniform parameters (branches every invocation takes the same way cost next to nothing, and
 * one shader compiles once instead of once per combination). Without a fused term k2 = 0 and
 * pa, pb are bound to any tensor of the call.
 */
export function gemmSpec(shape: GemmShape, sg: boolean): ShaderSpec {
  const sgArgs = sg
    ? `, @builtin(subgroup_id) sgId: u32, @builtin(num_subgroups) sgCount: u32,
  @builtin(subgroup_size) sgSize: u32, @builtin(subgroup_invocation_id) sgLane: u32`
    : "";
  const body = `
const TX = ${shape.tx}u;
const TY = ${shape.ty}u;
const BM = 4u * TY;
const BN = 4u * TX;
const BK = ${BK}u;
const NT = TX * TY;
${
  sg
    ? `const AS = BK + 1u; // A's row stride in workgroup memory (subgroupSteps)
var<workgroup> As: array<f32, BM * AS>;
fn aAt(i: u32, kk: u32) -> u32 { return i * AS + kk; }`
    : `var<workgroup> As: array<f32, BK * BM>;
fn aAt(i: u32, kk: u32) -> u32 { return kk * BM + i; }`
}
var<workgroup> Bs: array<f32, BK * BN>;
fn bAt(j: u32, kk: u32) -> u32 { return kk * BN + j; }

@compute @workgroup_size(TX, TY, 1)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u${sgArgs}) {
  ${numbering(sg)}
  let lx = lid % TX;
  let ly = lid / TX;
  let row0 = wid.y * BM;
  let col0 = wid.x * BN;
  let z = wid.z;
  let aRowMajorK = (p.flags & ${GEMM_FLAGS.transA}u) == 0u;
  let bRowMajorK = (p.flags & ${GEMM_FLAGS.transB}u) != 0u;
  let paRowMajorK = (p.flags & ${GEMM_FLAGS.plusTransA}u) == 0u;
  let pbRowMajorK = (p.flags & ${GEMM_FLAGS.plusTransB}u) != 0u;
  let aBase = p.a_off + z * p.m * p.k;
  let bBase = p.b_off + z * p.bStride;

  // causal: the K range (lowerA), whole tiles (maskOut) and K blocks (upperA) known to be zero
  let rowLast = min(row0 + BM, p.m) - 1u;
  var maxIq = rowLast % p.period; // the largest (row mod period) among this tile's rows
  if (row0 / p.period != rowLast / p.period) { maxIq = p.period - 1u; }
  var kEnd = p.k;
  if (p.causal == ${GEMM_CAUSAL.maskOut}u && col0 > maxIq) { kEnd = 0u; }
  if (p.causal == ${GEMM_CAUSAL.lowerA}u) { kEnd = min(p.k, maxIq + 1u); }

  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    // upperA (M == period): op(a)[i, k] == 0 where k mod period < i, so a block [k0, kLast] that
    // does not wrap a period and ends left of row0 adds nothing to this tile
    let kLast = min(k0 + BK, p.k) - 1u;
    if (p.causal == ${GEMM_CAUSAL.upperA}u && (k0 % p.period) + (kLast - k0) < p.period &&
        kLast % p.period < row0) { continue; }
    ${loadTile("As", "aAt", "a", "aBase", "BM", "row0", "p.m", "p.k", "aRowMajorK")}
    ${loadTile("Bs", "bAt", "b", "bBase", "BN", "col0", "p.n", "p.k", "bRowMajorK")}
    ${kLoop("acc", sg)}
  }
  var acc2: array<f32, 16>;
  for (var k0 = 0u; k0 < p.k2; k0 += BK) {
    ${loadTile("As", "aAt", "pa", "p.pa_off", "BM", "row0", "p.m", "p.k2", "paRowMajorK")}
    ${loadTile("Bs", "bAt", "pb", "p.pb_off", "BN", "col0", "p.n", "p.k2", "pbRowMajorK")}
    ${kLoop("acc2", sg)}
  }
  let accumulate = (p.flags & ${GEMM_FLAGS.accumulate}u) != 0u;
  let oBase = p.out_off + z * p.m * p.n;
  for (var r = 0u; r < 4u; r++) {
    let i = row0 + ly + r * TY;
    for (var c = 0u; c < 4u; c++) {
      let j = col0 + lx + c * TX;
      if (i < p.m && j < p.n) {
        var v = p.alpha * acc[r * 4u + c] + p.alpha2 * acc2[r * 4u + c];
        if (accumulate) { v += out[oBase + i * p.n + j]; }
        if (p.causal == ${GEMM_CAUSAL.maskOut}u && j > i % p.period) { v = 0.0; }
        out[oBase + i * p.n + j] = v;
      }
    }
  }
}
`;
  return {
    name: `gemm${sg ? " subgroups" : ""}`,
    subgroups: sg,
    buffers: ["out", "a", "b", "pa", "pb"].map((name) => ({ name, elem: "f32" as const })),
    params: [
      { name: "m", type: "u32" },
      { name: "n", type: "u32" },
      { name: "k", type: "u32" },
      { name: "k2", type: "u32" },
      { name: "bStride", type: "u32" },
      { name: "period", type: "u32" },
      { name: "flags", type: "u32" },
      { name: "causal", type: "u32" },
      { name: "alpha", type: "f32" },
      { name: "alpha2", type: "f32" },
    ],
    body,
  };
}
