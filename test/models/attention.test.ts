// models/attention.ts on its own: both implementations ("tiled" at several tile sizes: tiles of
// query rows, and tiles of whole heads when they fit; "full") against a float64 oracle written
// here from the definition (softmax(scale Q K^T + causal and padding masks) V, and its gradients
// through the softmax Jacobian), on every engine, with grouped query heads, right padding (a row
// with no visible key included), odd T, T not a multiple of the tile, B > 1, and GPT-2's layout
// (Q, K, V heads of one (B, 3H, T, D) tensor).

import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import type { Kernels, KernelsName } from "../../src/kernels/kernels.js";
import { AttentionPlan, type Heads } from "../../src/models/attention.js";
import { Heap } from "../../src/tensor/heap.js";
import type { Tensor } from "../../src/tensor/tensor.js";
import { Rng } from "../../src/util/random.js";
import { relErr } from "../helpers/model-fixtures.js";
import { NATIVE_ENGINES } from "../helpers/native.js";

const KERNELS: KernelsName[] = ["ref", "wasm", ...NATIVE_ENGINES];

interface Case {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  D: number;
  lengths: number[];
  packed: boolean; // GPT-2 layout: q, k, v in one (B, 3H, T, D) tensor (needs H == Hkv)
}

/** (B, N, T, D) arrays of one role, as plain numbers: x[b][h][t][i]. */
type Heads4 = number[][][][];

/** out, dq, dk, dv of causal attention in float64, straight from the definition. */
function oracle(c: Case, q: Heads4, k: Heads4, v: Heads4, dOut: Heads4, scale: number) {
  const { B, T, H, Hkv, D } = c;
  const g = H / Hkv;
  const zeros = (n: number) =>
    Array.from({ length: B }, () =>
      Array.from({ length: n }, () => Array.from({ length: T }, () => new Array(D).fill(0))),
    );
  const out = zeros(H);
  const dq = zeros(H);
  const dk = zeros(Hkv);
  const dv = zeros(Hkv);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / g);
      for (let i = 0; i < T; i++) {
        const visible = Math.min(i + 1, c.lengths[b]); // keys j < visible
        if (visible <= 0) continue; // all-zero probabilities: zero output, no gradient
        const s: number[] = [];
        for (let j = 0; j < visible; j++) {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += q[b][h][i][e] * k[b][hk][j][e];
          s.push(scale * dot);
        }
        const max = Math.max(...s);
        const ex = s.map((x) => Math.exp(x - max));
        const sum = ex.reduce((a, x) => a + x, 0);
        const p = ex.map((x) => x / sum);
        const dp = p.map((_, j) => {
          let dot = 0;
          for (let e = 0; e < D; e++) dot += dOut[b][h][i][e] * v[b][hk][j][e];
          return dot;
        });
        const rowDot = p.reduce((a, pj, j) => a + pj * dp[j], 0);
        for (let j = 0; j < visible; j++) {
          const ds = scale * p[j] * (dp[j] - rowDot); // d raw score
          for (let e = 0; e < D; e++) {
            out[b][h][i][e] += p[j] * v[b][hk][j][e];
            dv[b][hk][j][e] += p[j] * dOut[b][h][i][e];
            dq[b][h][i][e] += ds * k[b][hk][j][e];
            dk[b][hk][j][e] += ds * q[b][h][i][e];
          }
        }
      }
    }
  }
  return { out, dq, dk, dv };
}

function random4(rng: Rng, B: number, N: number, T: number, D: number): Heads4 {
  return Array.from({ length: B }, () =>
    Array.from({ length: N }, () =>
      Array.from({ length: T }, () => Array.from({ length: D }, () => rng.normal())),
    ),
  );
}

/** Writes role arrays into a (B, N, T, D) tensor at heads first.. of each row; reads them back. */
function put(t: Tensor, x: Heads4, first: number): void {
  const [, N, T, D] = t.shape;
  const f = t.f32();
  x.forEach((row, b) => {
    row.forEach((head, h) => {
      head.forEach((vec, i) => {
        f.set(vec, ((b * N + first + h) * T + i) * D);
      });
    });
  });
}
function take(t: Tensor, B: number, n: number, first: number): Float32Array {
  const [, N, T, D] = t.shape;
  const f = t.f32();
  const out = new Float32Array(B * n * T * D);
  for (let b = 0; b < B; b++)
    out.set(f.subarray((b * N + first) * T * D, (b * N + first + n) * T * D), b * n * T * D);
  return out;
}
const flat = (x: Heads4) => Float32Array.from(x.flat(3));

const CASES: { name: string; c: Case; tiles: number[] }[] = [
  {
    name: "GQA g=2, odd T, padding (one row sees no key), B=3",
    c: { B: 3, T: 13, H: 4, Hkv: 2, D: 8, lengths: [13, 6, 0], packed: false },
    tiles: [1, 4, 5, 13, 26, 40, 64], // 26, 40: one key/value head per tile; 64: two
  },
  {
    name: "MHA, GPT-2's packed (B, 3H, T, D) layout, B=2",
    c: { B: 2, T: 10, H: 3, Hkv: 3, D: 4, lengths: [10, 7], packed: true },
    tiles: [3, 10, 20], // 20: two heads, then one
  },
  {
    name: "GQA g=4 (one kv head), T a multiple of the tile",
    c: { B: 1, T: 16, H: 4, Hkv: 1, D: 6, lengths: [16], packed: false },
    tiles: [4, 8, 64], // 64: the whole (one) key/value head
  },
];

describe.each(KERNELS)("attention.ts: tiled and full vs a float64 oracle (%s)", (kernelsName) => {
  let kernels: Kernels;
  beforeAll(async () => {
    kernels = await createKernels(kernelsName, {
      heap: new Heap({ initialBytes: 8 * 2 ** 20 }),
      threads: 2,
    });
  });
  afterAll(async () => {
    await kernels.dispose();
  });

  test.each(CASES)("$name", ({ c, tiles }) => {
    const { B, T, H, Hkv, D } = c;
    const heap = kernels.heap;
    const rng = new Rng(7);
    const q = random4(rng, B, H, T, D);
    const k = random4(rng, B, Hkv, T, D);
    const v = random4(rng, B, Hkv, T, D);
    const dO = random4(rng, B, H, T, D);
    const scale = 0.3;
    const want = oracle(c, q, k, v, dO, scale);
    const owned: Tensor[] = [];
    const alloc = (shape: number[], dtype: "f32" | "i32" = "f32") => {
      const t = heap.tensor(shape, dtype);
      owned.push(t);
      return t;
    };
    try {
      // inputs and gradients: one (B, 3H, T, D) tensor each (packed), or a tensor per role
      const roles = (): [Heads, Heads, Heads] => {
        if (c.packed) {
          const t = alloc([B, 3 * H, T, D]).fill(Number.NaN); // overwritten parts only
          return [
            { tensor: t, first: 0 },
            { tensor: t, first: H },
            { tensor: t, first: 2 * H },
          ];
        }
        return [
          { tensor: alloc([B, H, T, D]).fill(Number.NaN) },
          { tensor: alloc([B, Hkv, T, D]).fill(Number.NaN) },
          { tensor: alloc([B, Hkv, T, D]).fill(Number.NaN) },
        ];
      };
      const [qh, kh, vh] = roles();
      put(qh.tensor, q, qh.first ?? 0);
      put(kh.tensor, k, kh.first ?? 0);
      put(vh.tensor, v, vh.first ?? 0);
      const dOut = alloc([B, H, T, D]);
      put(dOut, dO, 0);
      const lengths = alloc([B], "i32");
      lengths.i32().set(c.lengths);
      const runs: [string, "tiled" | "full", number][] = [
        ["full", "full", 1],
        ...tiles.map((t) => [`tiled ${t}`, "tiled", t] as [string, "tiled", number]),
      ];
      for (const [what, impl, tile] of runs) {
        const plan = new AttentionPlan((s) => alloc(s), c, impl, tile);
        const saved = plan.savedBuffer();
        const out = alloc([B, H, T, D]).fill(Number.NaN);
        const [dq, dk, dv] = roles(); // NaN-filled: backward must overwrite every element
        plan.forward(kernels, out, qh, kh, vh, lengths, saved, { scale });
        plan.backward(kernels, dq, dk, dv, dOut, qh, kh, vh, lengths, saved, { scale });
        const check = (name: string, got: Float32Array, expected: Float32Array) => {
          const { rel, at } = relErr(got, expected);
          expect(rel, `${what} ${name}: rel err ${rel} at ${at}`).toBeLessThanOrEqual(2e-5);
        };
        check("out", take(out, B, H, 0), flat(want.out));
        check("dq", take(dq.tensor, B, H, dq.first ?? 0), flat(want.dq));
        check("dk", take(dk.tensor, B, Hkv, dk.first ?? 0), flat(want.dk));
        check("dv", take(dv.tensor, B, Hkv, dv.first ?? 0), flat(want.dv));
      }
    } finally {
      for (const t of owned) t.dispose();
    }
  });

  test("a tile that is not a positive integer is an error", () => {
    const d = { B: 1, T: 4, H: 1, Hkv: 1, D: 2 };
    const alloc = (s: number[]) => kernels.heap.tensor(s);
    expect(() => new AttentionPlan(alloc, d, "tiled", 0)).toThrow(/positive integer/);
    expect(() => new AttentionPlan(alloc, d, "tiled", 2.5)).toThrow(/positive integer/);
  });
});
