// wasm rmsnorm / layernorm (and backwards) / rope / ropeBackward / permute0213 vs the reference kernels:
// awkward shapes (one row, primes, C and D/2 not multiples of 4, sizes split across threads and
// past the dWeight partial-buffer bound), 1 and 2 threads, plain and relaxed SIMD, backward
// accumulation into pre-filled gradients, dWeight null, in-place and partially overlapping buffers.
// BackwardOptions of the backwards: accumulate: false over NaN equals accumulate: true over zeros
// and the default still adds (test/helpers/accumulate-modes.ts), for wasm and ref; dWeight, dBias
// accumulate either way; in place and through the reference fallback.
// Tolerances: the wasm kernels compute in f32 (row sums in 4-lane f32 vectors) where the reference
// evaluates in f64, so each value may differ by a few ulps of the magnitudes of its terms
// (computed here from the inputs): |got - want| <= TOL * (sum of |terms|). permute0213 is a copy:
// exact.

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Kernels } from "../../src/kernels/kernels.js";
import { createRefKernels } from "../../src/kernels/ref/index.js";
import { createWasmKernels, type WasmKernels } from "../../src/kernels/wasm/index.js";
import { Heap } from "../../src/tensor/heap.js";
import {
  expectAccumulateModes,
  expectSameNumbers,
  runAccumulateModes,
} from "../helpers/accumulate-modes.js";
import { randomUniform as random } from "../helpers/random.js";

const TOL = 1e-5;

function expectClose(
  what: string,
  got: Float32Array,
  want: Float32Array,
  scale: (i: number) => number,
): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const tol = TOL * scale(i) + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= tol))
      expect.fail(`${what} [${i}]: got ${got[i]}, want ${want[i]} (tol ${tol})`);
  }
}

/** [rows, cols]: one row, tiny, primes, C % 4 != 0, split across threads, many chunks. */
const normShapes: [number, number][] = [
  [1, 1],
  [1, 5],
  [3, 7],
  [17, 4],
  [13, 33],
  [601, 131],
  [64, 1030],
  [531, 2000],
];
/** [B, T, H, D]: D/2 below 4, not a multiple of 4, and a size split across threads. */
const ropeShapes: [number, number, number, number][] = [
  [1, 1, 1, 2],
  [2, 3, 5, 6],
  [1, 7, 3, 10],
  [3, 37, 5, 22],
  [3, 67, 4, 130],
  [2, 64, 8, 64],
];
/** [A, B, C, D] */
const permuteShapes: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [2, 3, 5, 7],
  [3, 5, 2, 4],
  [2, 3, 4, 1],
  [3, 7, 129, 37],
  [4, 64, 8, 64],
  [2, 8, 64, 64],
  [1, 3, 40000, 1],
];

const configs = [
  { threads: 1, relaxed: false },
  { threads: 2, relaxed: false },
  { threads: 2, relaxed: true }, // required: without relaxed SIMD this fails, it is not skipped
];

describe.each(configs)(
  "wasm norms, rope, permute: $threads thread(s), relaxed $relaxed",
  ({ threads, relaxed }) => {
    let heap: Heap;
    let kernels: WasmKernels;
    let ref: Kernels;
    beforeAll(async () => {
      heap = new Heap({ initialBytes: 64 * 2 ** 20 });
      kernels = await createWasmKernels(heap, { threads, relaxedSimd: relaxed, spinMs: 5 });
      ref = createRefKernels(heap);
    });
    afterAll(async () => {
      await kernels?.dispose();
    });

    test("rmsnorm matches the reference (out and rstd), also in place", () => {
      let seed = 1;
      for (const [rows, cols] of normShapes) {
        for (const inPlace of [false, true]) {
          const x = random(rows * cols, seed++, 3);
          const w = random(cols, seed++, 2);
          const results = [kernels, ref].map((k) => {
            const inp = heap.fromArray(x, [rows, cols]);
            const weight = heap.fromArray(w);
            const out = inPlace ? inp : heap.tensor([rows, cols]).fill(7);
            const rstd = heap.tensor([rows]).fill(7);
            k.rmsnorm(out, rstd, inp, weight, 1e-5);
            const r = { out: out.toArray(), rstd: rstd.toArray() };
            for (const t of new Set([inp, weight, out, rstd])) t.dispose();
            return r;
          });
          const [got, want] = results;
          const what = `rmsnorm [${rows}, ${cols}] inPlace=${inPlace}`;
          expectClose(`${what} rstd`, got.rstd, want.rstd, (r) => want.rstd[r]);
          expectClose(`${what} out`, got.out, want.out, (i) =>
            Math.abs(x[i] * w[i % cols] * want.rstd[Math.floor(i / cols)]),
          );
        }
      }
    });

    test("rmsnormBackward accumulates into dInp and dWeight (and dWeight null)", () => {
      let seed = 100;
      for (const [rows, cols] of normShapes) {
        for (const withWeight of [true, false]) {
          const x = random(rows * cols, seed++, 3);
          const w = random(cols, seed++, 2);
          const dy = random(rows * cols, seed++, 1);
          const dx0 = random(rows * cols, seed++, 0.5);
          const dw0 = random(cols, seed++, 0.5);
          const s = new Float32Array(rows);
          for (let r = 0; r < rows; r++) s[r] = 0.5 + (r % 7) * 0.25; // any rstd will do
          const results = [kernels, ref].map((k) => {
            const [inp, dOut, dInp] = [x, dy, dx0].map((v) => heap.fromArray(v, [rows, cols]));
            const [weight, dWeight, rstd] = [w, dw0, s].map((v) => heap.fromArray(v));
            k.rmsnormBackward(dInp, withWeight ? dWeight : null, dOut, inp, weight, rstd);
            const r = { dInp: dInp.toArray(), dWeight: dWeight.toArray() };
            for (const t of [inp, dOut, dInp, weight, dWeight, rstd]) t.dispose();
            return r;
          });
          const [got, want] = results;
          const what = `rmsnormBackward [${rows}, ${cols}] dWeight=${withWeight}`;
          // terms of dInp: prefill, s w dy, coef x with |coef| <= s^3 sum|w dy x| / C
          const dotAbs = new Float64Array(rows);
          for (let i = 0; i < rows * cols; i++)
            dotAbs[Math.floor(i / cols)] += Math.abs(w[i % cols] * dy[i] * x[i]);
          expectClose(`${what} dInp`, got.dInp, want.dInp, (i) => {
            const r = Math.floor(i / cols);
            const sr = s[r];
            return (
              Math.abs(dx0[i]) +
              Math.abs(sr * w[i % cols] * dy[i]) +
              Math.abs(x[i]) * ((sr * sr * sr * dotAbs[r]) / cols)
            );
          });
          if (!withWeight) {
            expect(Array.from(got.dWeight)).toEqual(Array.from(dw0));
            continue;
          }
          const colAbs = new Float64Array(cols);
          for (let i = 0; i < rows * cols; i++)
            colAbs[i % cols] += Math.abs(dy[i] * x[i] * s[Math.floor(i / cols)]);
          expectClose(
            `${what} dWeight`,
            got.dWeight,
            want.dWeight,
            (c) => Math.abs(dw0[c]) + colAbs[c],
          );
        }
      }
    });

    test("layernorm matches the reference (out, mean and rstd), also in place", () => {
      let seed = 600;
      for (const [rows, cols] of normShapes) {
        for (const inPlace of [false, true]) {
          const x = random(rows * cols, seed++, 3).map((v, i) => v + (i % 3) - 1.5 + 0.5); // nonzero means
          const w = random(cols, seed++, 2);
          const bias = random(cols, seed++, 1);
          const [got, want] = [kernels, ref].map((k) => {
            const inp = heap.fromArray(x, [rows, cols]);
            const [weight, b] = [w, bias].map((v) => heap.fromArray(v));
            const out = inPlace ? inp : heap.tensor([rows, cols]).fill(7);
            const [mean, rstd] = [heap.tensor([rows]).fill(7), heap.tensor([rows]).fill(7)];
            k.layernorm(out, mean, rstd, inp, weight, b, 1e-5);
            const r = { out: out.toArray(), mean: mean.toArray(), rstd: rstd.toArray() };
            for (const t of new Set([inp, weight, b, out, mean, rstd])) t.dispose();
            return r;
          });
          const what = `layernorm [${rows}, ${cols}] inPlace=${inPlace}`;
          const absMean = new Float64Array(rows);
          for (let i = 0; i < rows * cols; i++)
            absMean[Math.floor(i / cols)] += Math.abs(x[i]) / cols;
          expectClose(`${what} mean`, got.mean, want.mean, (r) => absMean[r]);
          // rstd: the f32 differences x - mu lose up to an ulp of |x| each
          expectClose(
            `${what} rstd`,
            got.rstd,
            want.rstd,
            (r) => want.rstd[r] * (1 + 4 * absMean[r] * want.rstd[r]),
          );
          expectClose(`${what} out`, got.out, want.out, (i) => {
            const r = Math.floor(i / cols);
            const c = i % cols;
            return (
              (Math.abs(x[i]) + Math.abs(want.mean[r])) * want.rstd[r] * Math.abs(w[c]) * 4 +
              Math.abs(bias[c])
            );
          });
        }
      }
    });

    test("layernormBackward accumulates into dInp, dWeight, dBias (each may be null)", () => {
      let seed = 700;
      for (const [rows, cols] of normShapes) {
        for (const [withW, withB] of [
          [true, true],
          [true, false],
          [false, true],
          [false, false],
        ]) {
          const x = random(rows * cols, seed++, 3);
          const w = random(cols, seed++, 2);
          const dy = random(rows * cols, seed++, 1);
          const dx0 = random(rows * cols, seed++, 0.5);
          const dw0 = random(cols, seed++, 0.5);
          const db0 = random(cols, seed++, 0.5);
          const mu = random(rows, seed++, 0.3);
          const s = new Float32Array(rows);
          for (let r = 0; r < rows; r++) s[r] = 0.5 + (r % 7) * 0.25; // any statistics will do
          const [got, want] = [kernels, ref].map((k) => {
            const [inp, dOut, dInp] = [x, dy, dx0].map((v) => heap.fromArray(v, [rows, cols]));
            const [weight, dWeight, dBias, mean, rstd] = [w, dw0, db0, mu, s].map((v) =>
              heap.fromArray(v),
            );
            k.layernormBackward(
              dInp,
              withW ? dWeight : null,
              withB ? dBias : null,
              dOut,
              inp,
              weight,
              mean,
              rstd,
            );
            const r = { dInp: dInp.toArray(), dWeight: dWeight.toArray(), dBias: dBias.toArray() };
            for (const t of [inp, dOut, dInp, weight, dWeight, dBias, mean, rstd]) t.dispose();
            return r;
          });
          const what = `layernormBackward [${rows}, ${cols}] dWeight=${withW} dBias=${withB}`;
          // |n| <= (|x| + |mu|) rstd; terms of dInp: prefill, rstd (|g| + mean|g| + |n| mean|g n|)
          const nAbs = (i: number): number =>
            (Math.abs(x[i]) + Math.abs(mu[Math.floor(i / cols)])) * s[Math.floor(i / cols)];
          const gMean = new Float64Array(rows);
          const gnMean = new Float64Array(rows);
          for (let i = 0; i < rows * cols; i++) {
            const g = Math.abs(w[i % cols] * dy[i]);
            gMean[Math.floor(i / cols)] += g / cols;
            gnMean[Math.floor(i / cols)] += (g * nAbs(i)) / cols;
          }
          expectClose(`${what} dInp`, got.dInp, want.dInp, (i) => {
            const r = Math.floor(i / cols);
            return (
              Math.abs(dx0[i]) +
              4 * s[r] * (Math.abs(w[i % cols] * dy[i]) + gMean[r] + nAbs(i) * gnMean[r])
            );
          });
          const wAbs = new Float64Array(cols);
          const bAbs = new Float64Array(cols);
          for (let i = 0; i < rows * cols; i++) {
            wAbs[i % cols] += Math.abs(dy[i]) * nAbs(i);
            bAbs[i % cols] += Math.abs(dy[i]);
          }
          if (withW)
            expectClose(
              `${what} dWeight`,
              got.dWeight,
              want.dWeight,
              (c) => Math.abs(dw0[c]) + 4 * wAbs[c],
            );
          else expect(Array.from(got.dWeight)).toEqual(Array.from(dw0));
          if (withB)
            expectClose(`${what} dBias`, got.dBias, want.dBias, (c) => Math.abs(db0[c]) + bAbs[c]);
          else expect(Array.from(got.dBias)).toEqual(Array.from(db0));
        }
      }
    });

    test("rope and ropeBackward match the reference, also in place", () => {
      let seed = 200;
      for (const [batch, time, heads, dim] of ropeShapes) {
        const half = dim / 2;
        const n = batch * time * heads * dim;
        for (const backward of [false, true]) {
          for (const inPlace of [false, true]) {
            const x = random(n, seed++, 3);
            const prefill = random(n, seed++, 1);
            const cs = random(time * half, seed++, 1);
            const sn = random(time * half, seed++, 1);
            const results = [kernels, ref].map((k) => {
              const inp = heap.fromArray(x, [batch, time, heads, dim]);
              const out = inPlace ? inp : heap.fromArray(prefill, [batch, time, heads, dim]);
              const [cos, sin] = [cs, sn].map((v) => heap.fromArray(v, [time, half]));
              if (backward) k.ropeBackward(out, inp, cos, sin);
              else k.rope(out, inp, cos, sin);
              const r = out.toArray();
              for (const t of new Set([inp, out, cos, sin])) t.dispose();
              return r;
            });
            const [got, want] = results;
            expectClose(
              `rope${backward ? "Backward" : ""} [${batch}, ${time}, ${heads}, ${dim}] inPlace=${inPlace}`,
              got,
              want,
              (i) => {
                const d = i % dim;
                const base = i - d;
                const p = d % half;
                const t = Math.floor(i / (heads * dim)) % time;
                const before = !backward ? 0 : inPlace ? x[i] : prefill[i];
                return (
                  Math.abs(before) +
                  Math.abs(x[base + p] * cs[t * half + p]) +
                  Math.abs(x[base + p + half] * sn[t * half + p]) +
                  Math.abs(x[base + p + half] * cs[t * half + p]) +
                  Math.abs(x[base + p] * sn[t * half + p])
                );
              },
            );
          }
        }
      }
    });

    test("rmsnormBackward with accumulate false overwrites dInp; dWeight still accumulates", () => {
      let seed = 800;
      for (const [rows, cols] of normShapes) {
        for (const withWeight of [true, false]) {
          const x = random(rows * cols, seed++, 3);
          const w = random(cols, seed++, 2);
          const dy = random(rows * cols, seed++, 1);
          const dw0 = random(cols, seed++, 0.5);
          const s = new Float32Array(rows);
          for (let r = 0; r < rows; r++) s[r] = 0.5 + (r % 5) * 0.25;
          const [inp, dOut] = [x, dy].map((v) => heap.fromArray(v, [rows, cols]));
          const [weight, rstd] = [w, s].map((v) => heap.fromArray(v));
          const what = `rmsnormBackward [${rows}, ${cols}] dWeight=${withWeight}`;
          const zeroedRef = heap.zeros([rows, cols]);
          ref.rmsnormBackward(zeroedRef, null, dOut, inp, weight, rstd);
          const [got, want] = [kernels, ref].map((k) => {
            const dWeights: Float32Array[] = [];
            const r = runAccumulateModes(heap, [[rows, cols]], seed, (outs, options) => {
              const dWeight = heap.fromArray(dw0);
              k.rmsnormBackward(
                outs[0],
                withWeight ? dWeight : null,
                dOut,
                inp,
                weight,
                rstd,
                options,
              );
              dWeights.push(dWeight.toArray());
              dWeight.dispose();
            });
            expectAccumulateModes(`${k.name} ${what}`, r);
            // dWeight: the same sum onto the same prefill in every mode
            for (const dW of dWeights) expect(Array.from(dW)).toEqual(Array.from(dWeights[2]));
            if (!withWeight) expect(Array.from(dWeights[0])).toEqual(Array.from(dw0));
            // in place (dInp = dOut, no dWeight): the wasm kernels delegate to the reference
            const inPlace = heap.fromArray(dy, [rows, cols]);
            k.rmsnormBackward(inPlace, null, inPlace, inp, weight, rstd, { accumulate: false });
            expectSameNumbers(`${k.name} ${what} in place`, inPlace.f32(), zeroedRef.f32());
            inPlace.dispose();
            return r.overwritten[0];
          });
          const dotAbs = new Float64Array(rows);
          for (let i = 0; i < rows * cols; i++)
            dotAbs[Math.floor(i / cols)] += Math.abs(w[i % cols] * dy[i] * x[i]);
          expectClose(`${what} dInp wasm vs ref`, got, want, (i) => {
            const r = Math.floor(i / cols);
            const sr = s[r];
            return (
              Math.abs(sr * w[i % cols] * dy[i]) +
              Math.abs(x[i]) * ((sr * sr * sr * dotAbs[r]) / cols)
            );
          });
          for (const t of [inp, dOut, weight, rstd, zeroedRef]) t.dispose();
        }
      }
    });

    test("layernormBackward with accumulate false overwrites dInp; dWeight, dBias still accumulate", () => {
      let seed = 900;
      for (const [rows, cols] of normShapes) {
        for (const withParams of [true, false]) {
          const x = random(rows * cols, seed++, 3);
          const w = random(cols, seed++, 2);
          const dy = random(rows * cols, seed++, 1);
          const dw0 = random(cols, seed++, 0.5);
          const db0 = random(cols, seed++, 0.5);
          const mu = random(rows, seed++, 0.3);
          const s = new Float32Array(rows);
          for (let r = 0; r < rows; r++) s[r] = 0.5 + (r % 5) * 0.25;
          const [inp, dOut] = [x, dy].map((v) => heap.fromArray(v, [rows, cols]));
          const [weight, mean, rstd] = [w, mu, s].map((v) => heap.fromArray(v));
          const what = `layernormBackward [${rows}, ${cols}] dWeight,dBias=${withParams}`;
          const zeroedRef = heap.zeros([rows, cols]);
          ref.layernormBackward(zeroedRef, null, null, dOut, inp, weight, mean, rstd);
          const [got, want] = [kernels, ref].map((k) => {
            const params: Float32Array[][] = [];
            const r = runAccumulateModes(heap, [[rows, cols]], seed, (outs, options) => {
              const [dWeight, dBias] = [dw0, db0].map((v) => heap.fromArray(v));
              const [dW, dB] = withParams ? [dWeight, dBias] : [null, null];
              k.layernormBackward(outs[0], dW, dB, dOut, inp, weight, mean, rstd, options);
              params.push([dWeight.toArray(), dBias.toArray()]);
              dWeight.dispose();
              dBias.dispose();
            });
            expectAccumulateModes(`${k.name} ${what}`, r);
            for (const [dW, dB] of params) {
              expect(Array.from(dW)).toEqual(Array.from(params[2][0]));
              expect(Array.from(dB)).toEqual(Array.from(params[2][1]));
            }
            if (!withParams) expect(Array.from(params[0][0])).toEqual(Array.from(dw0));
            // in place (dInp = dOut, no parameter gradients): the wasm kernels delegate to the reference
            const inPlace = heap.fromArray(dy, [rows, cols]);
            k.layernormBackward(inPlace, null, null, inPlace, inp, weight, mean, rstd, {
              accumulate: false,
            });
            expectSameNumbers(`${k.name} ${what} in place`, inPlace.f32(), zeroedRef.f32());
            inPlace.dispose();
            return r.overwritten[0];
          });
          const nAbs = (i: number): number =>
            (Math.abs(x[i]) + Math.abs(mu[Math.floor(i / cols)])) * s[Math.floor(i / cols)];
          const gMean = new Float64Array(rows);
          const gnMean = new Float64Array(rows);
          for (let i = 0; i < rows * cols; i++) {
            const g = Math.abs(w[i % cols] * dy[i]);
            gMean[Math.floor(i / cols)] += g / cols;
            gnMean[Math.floor(i / cols)] += (g * nAbs(i)) / cols;
          }
          expectClose(`${what} dInp wasm vs ref`, got, want, (i) => {
            const r = Math.floor(i / cols);
            return 4 * s[r] * (Math.abs(w[i % cols] * dy[i]) + gMean[r] + nAbs(i) * gnMean[r]);
          });
          for (const t of [inp, dOut, weight, mean, rstd, zeroedRef]) t.dispose();
        }
      }
    });

    test("ropeBackward with accumulate false overwrites dInp, also in place and on a partial overlap", () => {
      let seed = 1000;
      for (const [batch, time, heads, dim] of ropeShapes) {
        const half = dim / 2;
        const shape = [batch, time, heads, dim];
        const n = batch * time * heads * dim;
        const dy = random(n, seed++, 3);
        const cs = random(time * half, seed++, 1);
        const sn = random(time * half, seed++, 1);
        const dOut = heap.fromArray(dy, shape);
        const [cos, sin] = [cs, sn].map((v) => heap.fromArray(v, [time, half]));
        const what = `ropeBackward [${shape}]`;
        const [got, want] = [kernels, ref].map((k) => {
          const r = runAccumulateModes(heap, [shape], seed, (outs, options) =>
            k.ropeBackward(outs[0], dOut, cos, sin, options),
          );
          expectAccumulateModes(`${k.name} ${what}`, r);
          const inPlace = heap.fromArray(dy, shape);
          k.ropeBackward(inPlace, inPlace, cos, sin, { accumulate: false });
          expectSameNumbers(`${k.name} ${what} in place`, inPlace.f32(), r.zeroed[0]);
          inPlace.dispose();
          return r.overwritten[0];
        });
        expectClose(`${what} wasm vs ref`, got, want, (i) => {
          const d = i % dim;
          const base = i - d;
          const p = d % half;
          const t = Math.floor(i / (heads * dim)) % time;
          const [c, sv] = [cs[t * half + p], sn[t * half + p]];
          return (
            Math.abs(dy[base + p] * c) +
            Math.abs(dy[base + p + half] * sv) +
            Math.abs(dy[base + p + half] * c) +
            Math.abs(dy[base + p] * sv)
          );
        });
        for (const t of [dOut, cos, sin]) t.dispose();
      }
      // dInp overlapping dOut by all but 3 floats: the wasm kernels delegate to the reference
      const [gotOverlap, wantOverlap] = [kernels, ref].map((k) => {
        const buf = heap.fromArray(random(4 * 50 * 2 * 16 + 3, 1100, 1));
        const cos = heap.fromArray(random(50 * 8, 1101, 1), [50, 8]);
        const sin = heap.fromArray(random(50 * 8, 1102, 1), [50, 8]);
        k.ropeBackward(buf.view([4, 50, 2, 16], 3), buf.view([4, 50, 2, 16], 0), cos, sin, {
          accumulate: false,
        });
        const r = buf.toArray();
        for (const t of [buf, cos, sin]) t.dispose();
        return r;
      });
      expect(Array.from(gotOverlap)).toEqual(Array.from(wantOverlap));
    });

    test("permute0213 copies exactly as the reference does", () => {
      let seed = 300;
      for (const [a, b, c, d] of permuteShapes) {
        const x = random(a * b * c * d, seed++, 5);
        const results = [kernels, ref].map((k) => {
          const inp = heap.fromArray(x, [a, b, c, d]);
          const out = heap.tensor([a, c, b, d]).fill(7);
          k.permute0213(out, inp);
          const r = out.toArray();
          inp.dispose();
          out.dispose();
          return r;
        });
        const [got, want] = results;
        const bad = got.findIndex((v, i) => !Object.is(v, want[i]));
        if (bad >= 0)
          expect.fail(
            `permute0213 [${a}, ${b}, ${c}, ${d}] [${bad}]: got ${got[bad]}, want ${want[bad]}`,
          );
      }
    });

    test("partially overlapping buffers fall back to the reference", () => {
      const [rows, cols] = [300, 257];
      const n = rows * cols;
      const x = random(n + 1, 400, 2);
      const w = random(cols, 401, 2);
      const [got, want] = [kernels, ref].map((k) => {
        const buf = heap.fromArray(x);
        const weight = heap.fromArray(w);
        const rstd = heap.tensor([rows]);
        k.rmsnorm(buf.view([rows, cols], 1), rstd, buf.view([rows, cols], 0), weight, 1e-6);
        const r = buf.toArray();
        for (const t of [buf, weight, rstd]) t.dispose();
        return r;
      });
      expect(got).toEqual(want);
      const half = 8;
      const [gotRope, wantRope] = [kernels, ref].map((k) => {
        const buf = heap.fromArray(random(4 * 50 * 2 * 16 + 3, 402, 1));
        const cos = heap.fromArray(random(50 * half, 403, 1), [50, half]);
        const sin = heap.fromArray(random(50 * half, 404, 1), [50, half]);
        k.rope(buf.view([4, 50, 2, 16], 3), buf.view([4, 50, 2, 16], 0), cos, sin);
        const r = buf.toArray();
        for (const t of [buf, cos, sin]) t.dispose();
        return r;
      });
      expect(gotRope).toEqual(wantRope);
    });
  },
);

test("rmsnormBackward's dWeight does not depend on the thread count", async () => {
  const [rows, cols] = [1000, 203];
  const x = random(rows * cols, 500, 3);
  const w = random(cols, 501, 2);
  const dy = random(rows * cols, 502, 1);
  const s = random(rows, 503, 1);
  const results: Float32Array[] = [];
  for (const threads of [1, 2]) {
    const heap = new Heap({ initialBytes: 16 * 2 ** 20 });
    const k = await createWasmKernels(heap, { threads, spinMs: 5 });
    try {
      const [inp, dOut, dInp] = [x, dy, new Float32Array(rows * cols)].map((v) =>
        heap.fromArray(v, [rows, cols]),
      );
      const [weight, rstd] = [w, s].map((v) => heap.fromArray(v));
      const dWeight = heap.zeros([cols]);
      k.rmsnormBackward(dInp, dWeight, dOut, inp, weight, rstd);
      results.push(dWeight.toArray());
    } finally {
      await k.dispose();
    }
  }
  expect(results[1]).toEqual(results[0]);
});
