// Row kernels: one workgroup per row of a (rows, cols) tensor, WG invocations striding over the
// columns and combining their partial results (reduceSum / reduceMax) by a tree over WG slots:
// - without subgroups every level of the tree goes through workgroup memory (log2 WG barriers);
// - with subgroups (`sg`, where the device has them) the levels below the subgroup size run by
//   subgroupShuffleDown, saving log2(size) barriers (3 of 8 on lavapipe's 8 lanes, 5 on a GPU's
//   32). Any size works (4 on SwiftShader, 8 on lavapipe, 16-64 on GPUs: the kernel reads it),
//   and the additions are the tree's, in its order, so both variants give the same bits.
// Rows are numbered wid.x + 65535 wid.y so that more than 65535 rows fit in one dispatch.
// Column kernels (parameter gradients: dWeight, dBias) run one invocation per column over every
// row, so that the sum over rows needs no atomics and is deterministic.
// Formulas: kernels/ref/norms.ts, attention.ts, cross-entropy.ts, reduce.ts.

import type { ScalarType, ShaderSpec } from "./dispatch.js";
import { WG } from "./elementwise.js";

/** Workgroups per row of the dispatch grid (the spec's per-dimension limit). */
export const ROW_GRID = 65535;

/**
 * reduceSum / reduceMax(v, lid, last): the tree over WG slots of workgroup memory, its levels
 * pairing slot i with i + s for s = WG/2, WG/4, ... . Without subgroups `last` is 1 and every
 * level goes through memory. With them, `last` is the subgroup size where the subgroups are full
 * power-of-two ones (else 1): the levels from `last` / 2 down run by subgroupShuffleDown inside
 * each subgroup, every subgroup combining slots 0 .. last-1 alike, so each holds the result in
 * its lane 0. The additions pair the same values in the same order either way: both variants
 * give the same bits.
 */
function reduceFn(name: string, combine: (x: string, y: string) => string, sg: boolean): string {
  const shuffled = sg
    ? `
  if (last > 1u) {
    var x = red[sgLane];
    for (var s = last / 2u; s > 0u; s >>= 1u) { x = ${combine("x", "subgroupShuffleDown(x, s)")}; }
    r = subgroupBroadcast(x, 0u);
  }`
    : "";
  return `
fn ${name}(v: f32, lid: u32, last: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s >= last; s >>= 1u) {
    if (lid < s) { red[lid] = ${combine("red[lid]", "red[lid + s]")}; }
    workgroupBarrier();
  }
  var r = red[0];${shuffled}
  workgroupBarrier();
  return r;
}`;
}

function reduceHelpers(sg: boolean): string {
  const state = sg ? "var<workgroup> sgLastShared: u32;\nvar<private> sgLane: u32;" : "";
  return `
var<workgroup> red: array<f32, ${WG}>;
${state}
${reduceFn("reduceSum", (x, y) => `${x} + ${y}`, sg)}
${reduceFn("reduceMax", (x, y) => `max(${x}, ${y})`, sg)}
`;
}

const SUBGROUP_MAIN_ARGS =
  ", @builtin(subgroup_size) sgSize: u32, @builtin(subgroup_invocation_id) sgLaneIn: u32," +
  " @builtin(num_subgroups) sgCount: u32";
// `last` goes through workgroup memory: a loop bound around barriers must be workgroup-uniform
const SUBGROUP_INIT = `if (lid3.x == 0u) {
    let full = sgSize * sgCount == ${WG}u && (sgSize & (sgSize - 1u)) == 0u;
    sgLastShared = select(1u, sgSize, full);
  }
  let sgLast = workgroupUniformLoad(&sgLastShared);
  sgLane = sgLaneIn;`;

/** The reduction helpers, main's extra arguments and its first statements for one variant. */
function reduction(sg: boolean): { helpers: string; args: string; init: string } {
  return sg
    ? { helpers: reduceHelpers(true), args: SUBGROUP_MAIN_ARGS, init: SUBGROUP_INIT }
    : { helpers: reduceHelpers(false), args: "", init: "let sgLast = 1u;" };
}

interface Buffer {
  readonly name: string;
  readonly elem: ScalarType;
}
const f32 = (name: string): Buffer => ({ name, elem: "f32" });

/** A row kernel; `sg`: its reductions use subgroup operations (see the top of this file). */
function rowSpec(
  name: string,
  sg: boolean,
  buffers: readonly Buffer[],
  params: readonly { name: string; type: ScalarType }[],
  body: string,
  shared = "",
): ShaderSpec {
  const { helpers, args, init } = reduction(sg);
  return {
    name: `${name}${sg ? " subgroups" : ""}`,
    subgroups: sg,
    buffers,
    params: [{ name: "rows", type: "u32" }, { name: "cols", type: "u32" }, ...params],
    body: `${helpers}${shared}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid3: vec3u${args}) {
  ${init}
  let lid = lid3.x;
  let row = wid.x + ${ROW_GRID}u * wid.y;
  if (row >= p.rows) { return; }
  let C = p.cols;
  let base = row * C;
  ${body}
}
`,
  };
}

function store(dst: string, value: string, accumulate: boolean): string {
  return accumulate ? `${dst} += ${value};` : `${dst} = ${value};`;
}

export function rmsnormSpec(sg: boolean): ShaderSpec {
  return rowSpec(
    "rmsnorm",
    sg,
    [f32("out"), f32("rstd"), f32("inp"), f32("weight")],
    [{ name: "eps", type: "f32" }],
    `var ss = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { let x = inp[p.inp_off + base + c]; ss += x * x; }
  let s = 1.0 / sqrt(reduceSum(ss, lid, sgLast) / f32(C) + p.eps);
  for (var c = lid; c < C; c += ${WG}u) {
    out[p.out_off + base + c] = inp[p.inp_off + base + c] * s * weight[p.weight_off + c];
  }
  if (lid == 0u) { rstd[p.rstd_off + row] = s; }`,
  );
}

export function rmsnormBackwardSpec(accumulate: boolean, sg: boolean): ShaderSpec {
  return rowSpec(
    `rmsnormBackward${accumulate ? " acc" : ""}`,
    sg,
    [f32("dInp"), f32("dOut"), f32("inp"), f32("weight"), f32("rstd")],
    [],
    `let s = rstd[p.rstd_off + row];
  var dot = 0.0;
  for (var c = lid; c < C; c += ${WG}u) {
    dot += weight[p.weight_off + c] * dOut[p.dOut_off + base + c] * inp[p.inp_off + base + c];
  }
  let coef = s * s * s * reduceSum(dot, lid, sgLast) / f32(C);
  for (var c = lid; c < C; c += ${WG}u) {
    let d = s * weight[p.weight_off + c] * dOut[p.dOut_off + base + c] - coef * inp[p.inp_off + base + c];
    ${store("dInp[p.dInp_off + base + c]", "d", accumulate)}
  }`,
  );
}

export function layernormSpec(sg: boolean): ShaderSpec {
  return rowSpec(
    "layernorm",
    sg,
    [f32("out"), f32("mean"), f32("rstd"), f32("inp"), f32("weight"), f32("bias")],
    [{ name: "eps", type: "f32" }],
    `var sum = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { sum += inp[p.inp_off + base + c]; }
  let mu = reduceSum(sum, lid, sgLast) / f32(C);
  var sq = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { let d = inp[p.inp_off + base + c] - mu; sq += d * d; }
  let s = 1.0 / sqrt(reduceSum(sq, lid, sgLast) / f32(C) + p.eps);
  for (var c = lid; c < C; c += ${WG}u) {
    out[p.out_off + base + c] =
      (inp[p.inp_off + base + c] - mu) * s * weight[p.weight_off + c] + bias[p.bias_off + c];
  }
  if (lid == 0u) { mean[p.mean_off + row] = mu; rstd[p.rstd_off + row] = s; }`,
  );
}

export function layernormBackwardSpec(accumulate: boolean, sg: boolean): ShaderSpec {
  return rowSpec(
    `layernormBackward${accumulate ? " acc" : ""}`,
    sg,
    [f32("dInp"), f32("dOut"), f32("inp"), f32("weight"), f32("mean"), f32("rstd")],
    [],
    `let mu = mean[p.mean_off + row];
  let s = rstd[p.rstd_off + row];
  var gSum = 0.0;
  var gnSum = 0.0;
  for (var c = lid; c < C; c += ${WG}u) {
    let g = weight[p.weight_off + c] * dOut[p.dOut_off + base + c];
    gSum += g;
    gnSum += g * (inp[p.inp_off + base + c] - mu) * s;
  }
  let gMean = reduceSum(gSum, lid, sgLast) / f32(C);
  let gnMean = reduceSum(gnSum, lid, sgLast) / f32(C);
  for (var c = lid; c < C; c += ${WG}u) {
    let n = (inp[p.inp_off + base + c] - mu) * s;
    let g = weight[p.weight_off + c] * dOut[p.dOut_off + base + c];
    ${store("dInp[p.dInp_off + base + c]", "s * (g - gMean - n * gnMean)", accumulate)}
  }`,
  );
}

/**
 * probs = softmax(scale scores + mask) per row of (B, H, Tq, Tk); row r is query i = r mod Tq of
 * batch entry b = r / (H Tq). Visible keys: j < keyLengths[b] (when given) and, causal,
 * j <= i + Tk - Tq. A row with no visible key is all zeros.
 */
export function attentionSoftmaxSpec(
  causal: boolean,
  keyLengths: boolean,
  sg: boolean,
): ShaderSpec {
  const buffers = [f32("probs"), f32("scores")];
  if (keyLengths) buffers.push({ name: "keyLengths", elem: "i32" });
  const limit = keyLengths
    ? "clamp(keyLengths[p.keyLengths_off + row / (p.heads * p.tq)], 0, i32(C))"
    : "i32(C)";
  const visible = causal ? `clamp(i32(row % p.tq) + i32(C) - i32(p.tq) + 1, 0, limit)` : "limit";
  return rowSpec(
    `attentionSoftmax${causal ? " causal" : ""}${keyLengths ? " keyLengths" : ""}`,
    sg,
    buffers,
    [
      { name: "heads", type: "u32" },
      { name: "tq", type: "u32" },
      { name: "scale", type: "f32" },
    ],
    `if (lid == 0u) { limitShared = ${limit}; }
  let limit = workgroupUniformLoad(&limitShared);
  let visible = u32(${visible});
  var m = -0x1.fffffep+127f;
  for (var c = lid; c < visible; c += ${WG}u) { m = max(m, p.scale * scores[p.scores_off + base + c]); }
  m = reduceMax(m, lid, sgLast);
  var sum = 0.0;
  for (var c = lid; c < visible; c += ${WG}u) { sum += exp(p.scale * scores[p.scores_off + base + c] - m); }
  sum = reduceSum(sum, lid, sgLast);
  let inv = select(0.0, 1.0 / sum, visible > 0u);
  for (var c = lid; c < C; c += ${WG}u) {
    var v = 0.0;
    if (c < visible) { v = exp(p.scale * scores[p.scores_off + base + c] - m) * inv; }
    probs[p.probs_off + base + c] = v;
  }`,
    "var<workgroup> limitShared: i32;",
  );
}

export function attentionSoftmaxBackwardSpec(accumulate: boolean, sg: boolean): ShaderSpec {
  return rowSpec(
    `attentionSoftmaxBackward${accumulate ? " acc" : ""}`,
    sg,
    [f32("dScores"), f32("probs"), f32("dProbs")],
    [{ name: "scale", type: "f32" }],
    `var dot = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { dot += probs[p.probs_off + base + c] * dProbs[p.dProbs_off + base + c]; }
  dot = reduceSum(dot, lid, sgLast);
  for (var c = lid; c < C; c += ${WG}u) {
    let d = p.scale * probs[p.probs_off + base + c] * (dProbs[p.dProbs_off + base + c] - dot);
    ${store("dScores[p.dScores_off + base + c]", "d", accumulate)}
  }`,
  );
}

/**
 * Softmax cross-entropy per row of logits (N, V) (C = V): losses[row], and with `grad`
 * dLogits = (softmax - onehot) gradScale, which may be logits itself: every invocation reads
 * the elements it then overwrites, and logits[target] is read before the barrier in reduceSum.
 * The target goes through workgroup memory (workgroupUniformLoad) so that the early return of an
 * ignored row is uniform control flow, as the barriers after it require.
 */
export function crossEntropySpec(grad: boolean, sg: boolean): ShaderSpec {
  const buffers = [f32("losses"), f32("logits"), { name: "targets", elem: "i32" as ScalarType }];
  if (grad) buffers.push(f32("dLogits"));
  const zeroRow = grad
    ? `for (var c = lid; c < C; c += ${WG}u) { dLogits[p.dLogits_off + base + c] = 0.0; }`
    : "";
  const writeGrad = grad
    ? `let inv = 1.0 / sum;
  for (var c = lid; c < C; c += ${WG}u) {
    let q = exp(logits[p.logits_off + base + c] - m) * inv;
    dLogits[p.dLogits_off + base + c] = select(q, q - 1.0, i32(c) == t) * p.gradScale;
  }`
    : "";
  return rowSpec(
    `crossEntropy${grad ? " grad" : ""}`,
    sg,
    buffers,
    [
      { name: "ignoreIndex", type: "i32" },
      { name: "gradScale", type: "f32" },
    ],
    `if (lid == 0u) { targetShared = targets[p.targets_off + row]; }
  let t = workgroupUniformLoad(&targetShared);
  if (t == p.ignoreIndex) {
    if (lid == 0u) { losses[p.losses_off + row] = 0.0; }
    ${zeroRow}
    return;
  }
  var m = -0x1.fffffep+127f;
  for (var c = lid; c < C; c += ${WG}u) { m = max(m, logits[p.logits_off + base + c]); }
  m = reduceMax(m, lid, sgLast);
  let targetLogit = logits[p.logits_off + base + u32(t)];
  var sum = 0.0;
  for (var c = lid; c < C; c += ${WG}u) { sum += exp(logits[p.logits_off + base + c] - m); }
  sum = reduceSum(sum, lid, sgLast);
  if (lid == 0u) { losses[p.losses_off + row] = m + log(sum) - targetLogit; }
  ${writeGrad}`,
    "var<workgroup> targetShared: i32;",
  );
}

/**
 * Column sums over rows, one invocation per column c:
 *   kind "bias":      dBias[c] += sum_r dOut[r, c]
 *   kind "rmsnorm":   dWeight[c] += sum_r dOut[r, c] inp[r, c] rstd[r]
 *   kind "layernorm": dWeight[c] += sum_r dOut[r, c] (inp[r, c] - mean[r]) rstd[r], and the bias
 *                     sum into dBias when `bias`.
 */
export function columnSumSpec(kind: "bias" | "rmsnorm" | "layernorm", bias: boolean): ShaderSpec {
  const buffers: Buffer[] = [f32("dOut")];
  let term = "";
  if (kind === "rmsnorm") {
    buffers.push(f32("dWeight"), f32("inp"), f32("rstd"));
    term = "w += dy * inp[p.inp_off + r * C + c] * rstd[p.rstd_off + r];";
  } else if (kind === "layernorm") {
    buffers.push(f32("dWeight"), f32("inp"), f32("mean"), f32("rstd"));
    term = "w += dy * (inp[p.inp_off + r * C + c] - mean[p.mean_off + r]) * rstd[p.rstd_off + r];";
  }
  if (bias) buffers.push(f32("dBias"));
  return {
    name: `columnSum ${kind}${bias ? " bias" : ""}`,
    buffers,
    params: [
      { name: "rows", type: "u32" },
      { name: "cols", type: "u32" },
    ],
    body: `
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  let C = p.cols;
  if (c >= C) { return; }
  var w = 0.0;
  var b = 0.0;
  for (var r = 0u; r < p.rows; r++) {
    let dy = dOut[p.dOut_off + r * C + c];
    ${term}
    b += dy;
  }
  ${kind === "bias" ? "" : "dWeight[p.dWeight_off + c] += w;"}
  ${bias ? "dBias[p.dBias_off + c] += b;" : ""}
}
`,
  };
}

/** out[0] = sum, sum of squares or max of a's n elements, in one workgroup. */
export function reduceAllSpec(kind: "sum" | "sumSquares" | "max", sg: boolean): ShaderSpec {
  const term = kind === "sumSquares" ? "x * x" : "x";
  const start = kind === "max" ? "-0x1.fffffep+127f" : "0.0";
  const combine = kind === "max" ? "acc = max(acc, x);" : `acc += ${term};`;
  const { helpers, args, init } = reduction(sg);
  return {
    name: `reduce ${kind}${sg ? " subgroups" : ""}`,
    subgroups: sg,
    buffers: [f32("out"), f32("a")],
    params: [{ name: "n", type: "u32" }],
    body: `${helpers}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid3: vec3u${args}) {
  ${init}
  let lid = lid3.x;
  var acc = ${start};
  for (var i = lid; i < p.n; i += ${WG}u) { let x = a[p.a_off + i]; ${combine} }
  let r = ${kind === "max" ? "reduceMax" : "reduceSum"}(acc, lid, sgLast);
  if (lid == 0u) { out[p.out_off] = r; }
}
`,
  };
}
