// Elementwise WGSL kernels: each invocation handles elements i, i + stride, ... of n (a
// grid-stride loop, so any n runs on at most 65535 workgroups). One spec per op and, where an
// option changes the code (accumulate, GELU's approximation), per variant. Formulas are those of
// the reference kernels (kernels/ref/elementwise.ts, activations.ts, adamw.ts); ReLU, which only
// this engine has, is t5-activation.ts's host loop.

import type { ScalarType, ShaderSpec } from "./dispatch.js";

/** Invocations per workgroup of the elementwise and row kernels. */
export const WG = 256;

function mapSpec(
  name: string,
  buffers: readonly string[],
  params: readonly string[],
  statement: string,
  helpers = "",
): ShaderSpec {
  return {
    name,
    buffers: buffers.map((b) => ({ name: b, elem: "f32" as ScalarType })),
    params: [
      { name: "n", type: "u32" },
      ...params.map((q) => ({ name: q, type: "f32" as ScalarType })),
    ],
    body: `${helpers}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let stride = groups.x * ${WG}u;
  for (var i = gid.x; i < p.n; i += stride) {
    ${statement}
  }
}
`,
  };
}

/** `dst = value` or `dst += value` (BackwardOptions.accumulate). */
function store(dst: string, value: string, accumulate: boolean): string {
  return accumulate ? `${dst} += ${value};` : `${dst} = ${value};`;
}

const at = (b: string): string => `${b}[p.${b}_off + i]`;

export const ADD = mapSpec("add", ["out", "a", "b"], [], `${at("out")} = ${at("a")} + ${at("b")};`);
export const MUL = mapSpec("mul", ["out", "a", "b"], [], `${at("out")} = ${at("a")} * ${at("b")};`);
export const SCALE = mapSpec(
  "scale",
  ["out", "a"],
  ["alpha"],
  `${at("out")} = p.alpha * ${at("a")};`,
);
export const AXPY = mapSpec(
  "axpy",
  ["out", "a"],
  ["alpha"],
  `${at("out")} += p.alpha * ${at("a")};`,
);

const SIGMOID = "fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }";

export const SILU = mapSpec(
  "silu",
  ["out", "inp"],
  [],
  `let x = ${at("inp")}; ${at("out")} = x * sigmoid(x);`,
  SIGMOID,
);

export function siluBackwardSpec(accumulate: boolean): ShaderSpec {
  return mapSpec(
    `siluBackward${accumulate ? " acc" : ""}`,
    ["dInp", "inp", "dOut"],
    [],
    `let x = ${at("inp")}; let s = sigmoid(x);
    ${store(at("dInp"), `${at("dOut")} * s * (1.0 + x * (1.0 - s))`, accumulate)}`,
    SIGMOID,
  );
}

export const SWIGLU = mapSpec(
  "swiglu",
  ["out", "gate", "up"],
  [],
  `let g = ${at("gate")}; ${at("out")} = g * sigmoid(g) * ${at("up")};`,
  SIGMOID,
);

export function swigluBackwardSpec(accumulate: boolean): ShaderSpec {
  return mapSpec(
    `swigluBackward${accumulate ? " acc" : ""}`,
    ["dGate", "dUp", "gate", "up", "dOut"],
    [],
    `let g = ${at("gate")}; let u = ${at("up")}; let d = ${at("dOut")}; let s = sigmoid(g);
    ${store(at("dGate"), "d * u * s * (1.0 + g * (1.0 - s))", accumulate)}
    ${store(at("dUp"), "d * g * s", accumulate)}`,
    SIGMOID,
  );
}

// Phi(x) = erfc(-x / sqrt 2) / 2 with erfc from the Chebyshev fit of Numerical Recipes in C
// (2nd ed., section 6.2, erfcc: fractional error below 1.2e-7 everywhere), which keeps the
// relative accuracy in the negative tail, as the reference's normalCdf does.
const GELU_HELPERS = `
fn erfcc(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(2.0 - r, r, x >= 0.0);
}
fn normalCdf(x: f32) -> f32 { return 0.5 * erfcc(-x * 0.70710678118654752); }
const SQRT_2_OVER_PI = 0.79788456080286536;
const INV_SQRT_2PI = 0.39894228040143268;
const CUBIC = 0.044715;
`;

export function geluSpec(tanh: boolean): ShaderSpec {
  const value = tanh
    ? "0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + CUBIC * x * x * x)))"
    : "x * normalCdf(x)";
  return mapSpec(
    `gelu ${tanh ? "tanh" : "erf"}`,
    ["out", "inp"],
    [],
    `let x = ${at("inp")}; ${at("out")} = ${value};`,
    GELU_HELPERS,
  );
}

export function geluBackwardSpec(tanh: boolean, accumulate: boolean): ShaderSpec {
  const derivative = tanh
    ? `let t = tanh(SQRT_2_OVER_PI * (x + CUBIC * x * x * x));
    let dInner = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x);
    let g = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dInner;`
    : "let g = normalCdf(x) + x * INV_SQRT_2PI * exp(-0.5 * x * x);";
  return mapSpec(
    `geluBackward ${tanh ? "tanh" : "erf"}${accumulate ? " acc" : ""}`,
    ["dInp", "inp", "dOut"],
    [],
    `let x = ${at("inp")}; ${derivative}
    ${store(at("dInp"), `${at("dOut")} * g`, accumulate)}`,
    GELU_HELPERS,
  );
}

export const RELU = mapSpec("relu", ["out", "inp"], [], `${at("out")} = max(${at("inp")}, 0.0);`);

export const RELU_BACKWARD = mapSpec(
  "reluBackward",
  ["dInp", "inp", "dOut"],
  [],
  `${at("dInp")} = select(0.0, ${at("dOut")}, ${at("inp")} > 0.0);`,
);

/**
 * AdamW (kernels/ref/adamw.ts): decay = 1 - lr wd, stepSize = lr / (1 - beta1^t),
 * bc2Sqrt = sqrt(1 - beta2^t), computed on the host in float64.
 */
export const ADAMW = mapSpec(
  "adamw",
  ["param", "grad", "m", "v"],
  ["decay", "beta1", "beta2", "eps", "stepSize", "bc2Sqrt"],
  `let g = ${at("grad")};
    var w = ${at("param")} * p.decay;
    let m = ${at("m")} + (1.0 - p.beta1) * (g - ${at("m")});
    let v = p.beta2 * ${at("v")} + (1.0 - p.beta2) * g * g;
    ${at("m")} = m;
    ${at("v")} = v;
    ${at("param")} = w - (p.stepSize * m) / (sqrt(v) / p.bc2Sqrt + p.eps);`,
);

/**
 * SGD (kernels/ref/sgd.ts), one variant per (momentum, nesterov): wd, mu and damp1 = 1 -
 * dampening come from the host; first is 1 on the first step (the buffer takes d), else 0.
 */
export function sgdSpec(momentum: boolean, nesterov: boolean): ShaderSpec {
  const buffered = `if (p.first != 0.0) { ${at("buf")} = d; }
    else { ${at("buf")} = p.mu * ${at("buf")} + p.damp1 * d; }
    ${nesterov ? `d = d + p.mu * ${at("buf")};` : `d = ${at("buf")};`}`;
  return mapSpec(
    `sgd${momentum ? (nesterov ? " nesterov" : " momentum") : ""}`,
    momentum ? ["param", "grad", "buf"] : ["param", "grad"],
    ["lr", "wd", "mu", "damp1", "first"],
    `var d = ${at("grad")};
    if (p.wd != 0.0) { d = d + p.wd * ${at("param")}; }
    ${momentum ? buffered : ""}
    ${at("param")} = ${at("param")} - p.lr * d;`,
  );
}

/** out (R, C) += bias (C); n = R * C. */
export const ADD_BIAS = {
  ...mapSpec("addBias", ["out", "bias"], [], `${at("out")} += bias[p.bias_off + i % p.cols];`),
  params: [
    { name: "n", type: "u32" as ScalarType },
    { name: "cols", type: "u32" as ScalarType },
  ],
};

/**
 * Copies `n` 4-byte words of inp to out; the last word keeps out's bytes past `lastMask` (a copy
 * whose byte length is not a multiple of 4: odd 16-bit or u8 tensors).
 */
export const COPY_WORDS: ShaderSpec = {
  name: "copy",
  buffers: [
    { name: "out", elem: "u32" },
    { name: "inp", elem: "u32" },
  ],
  params: [
    { name: "n", type: "u32" },
    { name: "lastMask", type: "u32" },
  ],
  body: `
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let stride = groups.x * ${WG}u;
  for (var i = gid.x; i < p.n; i += stride) {
    var w = inp[p.inp_off + i];
    if (i + 1u == p.n) { w = (w & p.lastMask) | (out[p.out_off + i] & ~p.lastMask); }
    out[p.out_off + i] = w;
  }
}
`,
};

/**
 * Sets `n` 4-byte words of out to the bit pattern `bits` (an f32 or i32 value, or 0); the last
 * word keeps out's bytes past `lastMask`, as in COPY_WORDS.
 */
export const FILL_WORDS: ShaderSpec = {
  name: "fill",
  buffers: [{ name: "out", elem: "u32" }],
  params: [
    { name: "n", type: "u32" },
    { name: "bits", type: "u32" },
    { name: "lastMask", type: "u32" },
  ],
  body: `
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let stride = groups.x * ${WG}u;
  for (var i = gid.x; i < p.n; i += stride) {
    var w = p.bits;
    if (i + 1u == p.n) { w = (w & p.lastMask) | (out[p.out_off + i] & ~p.lastMask); }
    out[p.out_off + i] = w;
  }
}
`,
};
