// Code generation of the elementwise kernels (add, mul, scale, axpy, silu, swiglu and their
// backwards) as WebAssembly SIMD128 functions (the per-thread job that runs them over chunks:
// job.ts), and the exp used by them and by the softmax family (emitExpInto).
// The backwards come twice: accumulating (dX += ...) and overwriting (`...Overwrite`: dX = ...,
// generated without the load of dX, so the old gradient is never read).
//
// Every generated function has the signature (out0, out1, in0, in1, in2, n, scalar) with byte
// pointers and an element count; unused pointers are ignored. The body runs 4 lanes at a time, and
// the same code handles the last n % 4 elements one lane at a time (v128.load32_zero /
// v128.store32_lane), so results do not depend on where a chunk boundary falls.
// An output may be the very same buffer as an input (each vector is read before it is written);
// the caller must not pass partially overlapping buffers.
//
// exp: Cephes expf (S. Moshier, cephes/single/expf.c): n = round(x log2 e), r = x - n ln 2 in two
// parts, degree-5 minimax polynomial for e^r, scaled by 2^n through the exponent bits (rounding
// by adding and subtracting 1.5*2^23, as in many SIMD expf ports); x clamped
// to [-87.3, 88.3] (a clamped e^x stays finite: sigmoid(-inf) = 0 exactly is not reproduced, it
// gives a tiny positive number instead). Relative error ~1e-7.

import type { FunctionBuilder, Local, ModuleBuilder } from "../../asm.js";

/** The elementwise ops, in export order: export `ew${index}` computes EW_OPS[index]. */
export const EW_OPS = [
  "add",
  "mul",
  "scale",
  "axpy",
  "silu",
  "siluBackward",
  "swiglu",
  "swigluBackward",
  "siluBackwardOverwrite",
  "swigluBackwardOverwrite",
] as const;
export type EwOp = (typeof EW_OPS)[number];

interface Ctx {
  f: FunctionBuilder;
  /** f32x4 constants, splatted once before the loops (see EXP_CONSTANTS) */
  consts: Map<number, Local>;
  /** i32x4 splat of 127, the f32 exponent bias */
  bias: Local;
  temps: Local[];
}

const EXP_HI = 88.3762626647949;
const EXP_LO = -87.3365447505531;
const LN2_HI = 0.693359375;
const LN2_LO = -2.1219444e-4;
const EXP_POLY = [
  1.98756915e-4, 1.39819995e-3, 8.33345191e-3, 4.16657959e-2, 1.66666655e-1, 5.00000012e-1,
];
const ROUND_MAGIC = 12582912; // 1.5 * 2^23
const EXP_CONSTANTS = [EXP_HI, EXP_LO, Math.LOG2E, LN2_HI, LN2_LO, ROUND_MAGIC, 0, 1, ...EXP_POLY];

function constant(ctx: Ctx, value: number): Local {
  const l = ctx.consts.get(value);
  if (l === undefined)
    throw new Error(`elementwise codegen: constant ${value} is not in EXP_CONSTANTS`);
  return l;
}

/** Pushes exp(x) (x: a v128 local; clobbers temps[0..2]). */
function emitExp(ctx: Ctx, x: Local): void {
  const { f } = ctx;
  const [t, fx, z] = ctx.temps;
  // t = clamp(x) with pmin/pmax (one instruction each; NaN passes through as NaN)
  f.get(x).get(constant(ctx, EXP_HI)).simd("f32x4.pmin");
  f.get(constant(ctx, EXP_LO)).simd("f32x4.pmax").set(t);
  // round(t log2 e) by the 1.5*2^23 trick: z = t log2 e + M keeps the integer n in its low
  // mantissa bits (|n| < 2^22, round-to-nearest-even), fx = z - M = n as a float
  f.get(t)
    .get(constant(ctx, Math.LOG2E))
    .simd("f32x4.mul")
    .get(constant(ctx, ROUND_MAGIC))
    .simd("f32x4.add");
  f.set(z);
  f.get(z).get(constant(ctx, ROUND_MAGIC)).simd("f32x4.sub").set(fx);
  // 2^n = (n + 127) << 23; with bits(z) = bits(M) + n and bits(M) << 23 == 0 (mod 2^32),
  // (bits(z) + 127) << 23 is the same: keep it in z
  f.get(z).get(ctx.bias).simd("i32x4.add").i32(23).simd("i32x4.shl").set(z);
  // t = t - fx * C1 - fx * C2  (C1 + C2 = ln 2, C1 exact in few bits)
  f.get(t).get(fx).get(constant(ctx, LN2_HI)).simd("f32x4.mul").simd("f32x4.sub");
  f.get(fx).get(constant(ctx, LN2_LO)).simd("f32x4.mul").simd("f32x4.sub").set(t);
  // y = (((((p0 t + p1) t + p2) t + p3) t + p4) t + p5) t^2 + t + 1, times 2^n
  const p = EXP_POLY;
  f.get(constant(ctx, p[0]));
  for (let i = 1; i < p.length; i++)
    f.get(t).simd("f32x4.mul").get(constant(ctx, p[i])).simd("f32x4.add");
  f.get(t)
    .get(t)
    .simd("f32x4.mul")
    .simd("f32x4.mul")
    .get(t)
    .simd("f32x4.add")
    .get(constant(ctx, 1))
    .simd("f32x4.add");
  f.get(z).simd("f32x4.mul");
}

/** Pushes sigmoid(x) = 1 / (1 + exp(-x)) (clobbers temps[0..3]). */
function emitSigmoid(ctx: Ctx, x: Local): void {
  const { f } = ctx;
  const negX = ctx.temps[3];
  f.get(constant(ctx, 0)).get(x).simd("f32x4.sub").set(negX);
  f.get(constant(ctx, 1));
  f.get(constant(ctx, 1));
  emitExp(ctx, negX);
  f.simd("f32x4.add").simd("f32x4.div");
}

type Load = (ptr: Local) => void;
type Store = (ptr: Local, value: () => void) => void;

/** One step of `op` on the current element(s): loads via `load`, writes via `store`. */
function emitStep(ctx: Ctx, op: EwOp, p: Local[], scalar: Local, load: Load, store: Store): void {
  const { f } = ctx;
  const [out0, out1, in0, in1, in2] = p;
  const [x, y, s] = ctx.temps.slice(4);
  const sv = (): void => {
    f.get(scalar).simd("f32x4.splat");
  };
  switch (op) {
    case "add":
    case "mul":
      store(out0, () => {
        load(in0);
        load(in1);
        f.simd(op === "add" ? "f32x4.add" : "f32x4.mul");
      });
      return;
    case "scale":
      store(out0, () => {
        load(in0);
        sv();
        f.simd("f32x4.mul");
      });
      return;
    case "axpy":
      store(out0, () => {
        load(out0);
        load(in0);
        sv();
        f.simd("f32x4.mul").simd("f32x4.add");
      });
      return;
    case "silu":
      load(in0);
      f.set(x);
      store(out0, () => {
        emitSigmoid(ctx, x);
        f.get(x).simd("f32x4.mul");
      });
      return;
    case "siluBackward": // dInp (out0) += dOut (in1) * s * (1 + x (1 - s)), x = inp (in0)
    case "siluBackwardOverwrite": {
      // (the overwriting variant: dInp = ..., out0 not loaded)
      const accumulate = op === "siluBackward";
      load(in0);
      f.set(x);
      emitSigmoid(ctx, x);
      f.set(s);
      store(out0, () => {
        if (accumulate) load(out0);
        load(in1);
        f.get(s).simd("f32x4.mul");
        f.get(constant(ctx, 1))
          .get(x)
          .get(constant(ctx, 1))
          .get(s)
          .simd("f32x4.sub")
          .simd("f32x4.mul");
        f.simd("f32x4.add").simd("f32x4.mul");
        if (accumulate) f.simd("f32x4.add");
      });
      return;
    }
    case "swiglu": // out0 = g s(g) u, g = in0, u = in1
      load(in0);
      f.set(x);
      store(out0, () => {
        emitSigmoid(ctx, x);
        f.get(x).simd("f32x4.mul");
        load(in1);
        f.simd("f32x4.mul");
      });
      return;
    case "swigluBackward":
    case "swigluBackwardOverwrite": {
      // dGate (out0) += d u s (1 + g (1 - s)); dUp (out1) += d g s; g = in0, u = in1, d = in2
      // (the overwriting variant: = instead of +=, out0 and out1 not loaded)
      const accumulate = op === "swigluBackward";
      load(in0);
      f.set(x);
      emitSigmoid(ctx, x);
      f.set(s);
      load(in2);
      f.set(y); // d
      store(out0, () => {
        if (accumulate) load(out0);
        f.get(y);
        load(in1);
        f.simd("f32x4.mul").get(s).simd("f32x4.mul");
        f.get(constant(ctx, 1))
          .get(x)
          .get(constant(ctx, 1))
          .get(s)
          .simd("f32x4.sub")
          .simd("f32x4.mul");
        f.simd("f32x4.add").simd("f32x4.mul");
        if (accumulate) f.simd("f32x4.add");
      });
      store(out1, () => {
        if (accumulate) load(out1);
        f.get(y).get(x).simd("f32x4.mul").get(s).simd("f32x4.mul");
        if (accumulate) f.simd("f32x4.add");
      });
      return;
    }
    default:
      op satisfies never;
  }
}

function emitOp(m: ModuleBuilder, index: number, op: EwOp): void {
  const f = m.func(`ew${index}`, ["i32", "i32", "i32", "i32", "i32", "i32", "f32"], []);
  const p = f.params.slice(0, 5);
  const n = f.param(5);
  const scalar = f.param(6);
  const ctx: Ctx = {
    f,
    consts: new Map(EXP_CONSTANTS.map((v) => [v, f.local("v128")])),
    bias: f.local("v128"),
    temps: Array.from({ length: 7 }, () => f.local("v128")),
  };
  const vecEnd = f.local("i32"); // elements handled 4 at a time
  const i = f.local("i32");
  for (const [value, l] of ctx.consts) f.f32(value).simd("f32x4.splat").set(l);
  f.i32(127).simd("i32x4.splat").set(ctx.bias);
  f.get(n).i32(-4).op("i32.and").set(vecEnd);
  const loop = (width: 4 | 1): void => {
    const load: Load = (ptr) => {
      f.get(ptr).simdMem(width === 4 ? "v128.load" : "v128.load32_zero", 0);
    };
    const store: Store = (ptr, value) => {
      f.get(ptr);
      value();
      if (width === 4) f.simdMem("v128.store", 0);
      else f.simdLane("v128.store32_lane", 0, 0);
    };
    const end = width === 4 ? vecEnd : n;
    f.block().get(i).get(end).op("i32.ge_u").brIf(0).loop();
    emitStep(ctx, op, p, scalar, load, store);
    for (const ptr of p) f.addTo(ptr, 4 * width);
    f.addTo(i, width);
    f.get(i).get(end).op("i32.lt_u").brIf(0);
    f.end().end();
  };
  loop(4);
  loop(1);
}

/** Emits `ew0`, `ew1`, ... (one per entry of EW_OPS) into `m`. */
export function emitElementwise(m: ModuleBuilder): void {
  EW_OPS.forEach((op, index) => {
    emitOp(m, index, op);
  });
}

/**
 * Prepares exp for another generated function: splats the constants now (call this before any
 * loop) and returns an emitter of `out = exp(x)` for v128 locals (clobbers three private temps).
 */
export function emitExpInto(f: FunctionBuilder): (x: Local, out: Local) => void {
  const ctx: Ctx = {
    f,
    consts: new Map(EXP_CONSTANTS.map((v) => [v, f.local("v128")])),
    bias: f.local("v128"),
    temps: Array.from({ length: 3 }, () => f.local("v128")),
  };
  for (const [value, l] of ctx.consts) f.f32(value).simd("f32x4.splat").set(l);
  f.i32(127).simd("i32x4.splat").set(ctx.bias);
  return (x, out) => {
    emitExp(ctx, x);
    f.set(out);
  };
}
