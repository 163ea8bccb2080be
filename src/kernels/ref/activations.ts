// Reference activations and their backwards: SiLU, SwiGLU (Llama MLP), GELU exact (erf) and tanh
// approximation (GPT-2's gelu_new). Forward overwrites out (which may alias the input); backward
// accumulates into the input gradients, or overwrites them when `accumulate` is false (then each
// is written without being read).
//
// Formulas:
// - silu(x) = x * s(x), s = logistic sigmoid; silu'(x) = s(x) * (1 + x * (1 - s(x))).
// - swiglu(g, u) = silu(g) * u (Shazeer 2020, "GLU Variants Improve Transformer").
// - gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); gelu'(x) = Phi(x) + x phi(x)
//   (Hendrycks & Gimpel 2016; torch.nn.GELU approximate="none").
// - gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (torch approximate="tanh").

import type { Floats } from "./types.js";

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function silu(out: Floats, inp: Floats): void {
  for (let i = 0; i < out.length; i++) {
    const x = inp[i];
    out[i] = x * sigmoid(x);
  }
}

export function siluBackward(dInp: Floats, inp: Floats, dOut: Floats, accumulate = true): void {
  for (let i = 0; i < dInp.length; i++) {
    const x = inp[i];
    const s = sigmoid(x);
    const d = dOut[i] * s * (1 + x * (1 - s));
    dInp[i] = accumulate ? dInp[i] + d : d;
  }
}

/** out = silu(gate) * up */
export function swiglu(out: Floats, gate: Floats, up: Floats): void {
  for (let i = 0; i < out.length; i++) {
    const g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

export function swigluBackward(
  dGate: Floats,
  dUp: Floats,
  gate: Floats,
  up: Floats,
  dOut: Floats,
  accumulate = true,
): void {
  for (let i = 0; i < dOut.length; i++) {
    const g = gate[i];
    const u = up[i];
    const d = dOut[i];
    const s = sigmoid(g);
    const dg = d * u * s * (1 + g * (1 - s));
    const du = d * g * s;
    dGate[i] = accumulate ? dGate[i] + dg : dg;
    dUp[i] = accumulate ? dUp[i] + du : du;
  }
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/**
 * The error function to about 1e-15 relative accuracy. |x| < 2: Maclaurin series
 * erf x = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)) (Abramowitz & Stegun 7.1.5);
 * |x| >= 2: 1 - erfc(|x|), with the sign of x.
 */
export function erf(x: number): number {
  if (Number.isNaN(x) || x === 0) return x; // keeps the sign of zero
  const ax = Math.abs(x);
  if (ax >= 2) return x > 0 ? 1 - erfc(ax) : erfc(ax) - 1;
  const x2 = x * x;
  let term = x; // (-1)^n x^(2n+1) / n!
  let sum = x;
  for (let n = 1; n < 60; n++) {
    term *= -x2 / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) <= 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

/**
 * The complementary error function 1 - erf(x), accurate in the tail. x >= 2: continued fraction
 * erfc x = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) (A&S 7.1.14), evaluated
 * bottom-up with 80 levels (converged to double precision for x >= 2); x < 2: 1 - erf(x).
 */
function erfc(x: number): number {
  if (Number.isNaN(x)) return x;
  if (x < 2) return 1 - erf(x);
  if (x > 27) return 0; // exp(-x^2) underflows
  let f = x;
  for (let n = 80; n >= 1; n--) f = x + n / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** Standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2, without cancellation for negative x. */
function normalCdf(x: number): number {
  return x >= 0 ? 0.5 * (1 + erf(x * INV_SQRT2)) : 0.5 * erfc(-x * INV_SQRT2);
}

const INV_SQRT2 = 1 / Math.SQRT2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_CUBIC = 0.044715;

export function gelu(out: Floats, inp: Floats, approximate: "none" | "tanh"): void {
  if (approximate === "tanh") {
    for (let i = 0; i < out.length; i++) {
      const x = inp[i];
      out[i] = 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)));
    }
  } else {
    for (let i = 0; i < out.length; i++) {
      const x = inp[i];
      out[i] = x * normalCdf(x);
    }
  }
}

export function geluBackward(
  dInp: Floats,
  inp: Floats,
  dOut: Floats,
  approximate: "none" | "tanh",
  accumulate = true,
): void {
  if (approximate === "tanh") {
    for (let i = 0; i < dInp.length; i++) {
      const x = inp[i];
      const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x));
      const dInner = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x);
      const d = dOut[i] * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dInner);
      dInp[i] = accumulate ? dInp[i] + d : d;
    }
  } else {
    for (let i = 0; i < dInp.length; i++) {
      const x = inp[i];
      const cdf = normalCdf(x);
      const pdf = INV_SQRT_2PI * Math.exp(-0.5 * x * x);
      const d = dOut[i] * (cdf + x * pdf);
      dInp[i] = accumulate ? dInp[i] + d : d;
    }
  }
}
