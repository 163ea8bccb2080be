// Rng: bit-exact against an independent Python implementation (scripts/fixtures/make_rng_vectors.py),
// determinism, resume from state(), forks, and distribution moments.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { deterministicLog, Rng } from "../../src/util/random.js";
import { nonEmpty } from "../helpers/fixture-cases.js";

interface RngCase {
  seed: number;
  u32: number[];
  uniform: number[];
}
const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/rng_vectors.json", import.meta.url), "utf8"),
) as { cases: RngCase[] };

describe("Rng", () => {
  test.each(nonEmpty(fixture.cases, "rng_vectors.json"))(
    "matches the Python reference for seed $seed",
    (c) => {
      const rng = new Rng(c.seed);
      expect(Array.from({ length: c.u32.length }, () => rng.nextU32())).toEqual(c.u32);
      const rng2 = new Rng(c.seed);
      expect(Array.from({ length: c.uniform.length }, () => rng2.uniform())).toEqual(c.uniform);
    },
  );

  test("same seed, same stream; different seeds differ", () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const c = new Rng(124);
    const xa = Array.from({ length: 50 }, () => a.normal());
    const xb = Array.from({ length: 50 }, () => b.normal());
    const xc = Array.from({ length: 50 }, () => c.normal());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });

  test("rejects seeds that are not safe integers", () => {
    expect(() => new Rng(1.5)).toThrow(/safe integer/);
    expect(() => new Rng(Number.NaN)).toThrow(/safe integer/);
  });

  test("state()/fromState() resume exactly, including a pending normal", () => {
    const rng = new Rng(7);
    rng.normal(); // leaves the pair's second value cached
    const saved = JSON.parse(JSON.stringify(rng.state())) as number[];
    const expected = [rng.normal(), rng.normal(), rng.uniform(), rng.nextU32()];
    const resumed = Rng.fromState(saved);
    expect([resumed.normal(), resumed.normal(), resumed.uniform(), resumed.nextU32()]).toEqual(
      expected,
    );
    expect(() => Rng.fromState([1, 2, 3])).toThrow(/6 numbers/);
    expect(() => Rng.fromState([0, 0, 0, 0, 0, 0])).toThrow(/all-zero/);
    expect(() => Rng.fromState([1, 2, 3, -1, 0, 0])).toThrow(/word 3/);
  });

  test("fork() is deterministic and gives a different stream", () => {
    const p1 = new Rng(99);
    const p2 = new Rng(99);
    const c1 = p1.fork();
    const c2 = p2.fork();
    const s1 = Array.from({ length: 20 }, () => c1.nextU32());
    expect(Array.from({ length: 20 }, () => c2.nextU32())).toEqual(s1);
    const parent = Array.from({ length: 20 }, () => p1.nextU32());
    expect(parent).not.toEqual(s1);
    // parent and child sequences are uncorrelated (as uniforms)
    const n = 20000;
    let sxy = 0;
    for (let i = 0; i < n; i++) sxy += (p1.uniform() - 0.5) * (c1.uniform() - 0.5);
    expect(Math.abs(sxy / n / (1 / 12))).toBeLessThan(0.05);
  });

  test("uniform and normal moments", () => {
    const rng = new Rng(2024);
    const n = 200000;
    const u = new Float64Array(n);
    rng.fillUniform(u, -1, 3);
    let mean = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const x of u) {
      mean += x;
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    mean /= n;
    let variance = 0;
    for (const x of u) variance += (x - mean) ** 2;
    variance /= n;
    // uniform(-1, 3): mean 1, variance 16/12; standard errors ~0.0026 and ~0.003
    expect(Math.abs(mean - 1)).toBeLessThan(0.015);
    expect(Math.abs(variance - 16 / 12)).toBeLessThan(0.02);
    expect(min).toBeGreaterThanOrEqual(-1);
    expect(max).toBeLessThan(3);

    const z = new Float32Array(n);
    rng.fillNormal(z, 2, 0.5);
    const m = [0, 0, 0, 0];
    for (const x of z) {
      const d = (x - 2) / 0.5;
      m[0] += d;
      m[1] += d * d;
      m[2] += d * d * d;
      m[3] += d * d * d * d;
    }
    // N(0,1) moments 0, 1, 0, 3 (standard errors ~0.0022, 0.0032, 0.0055, 0.017)
    expect(Math.abs(m[0] / n)).toBeLessThan(0.012);
    expect(Math.abs(m[1] / n - 1)).toBeLessThan(0.02);
    expect(Math.abs(m[2] / n)).toBeLessThan(0.03);
    expect(Math.abs(m[3] / n - 3)).toBeLessThan(0.1);
  });

  test("below(n) is in range and roughly uniform; shuffle is a permutation", () => {
    const rng = new Rng(5);
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < 70000; i++) counts[rng.below(7)]++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(500);
    const arr = Array.from({ length: 100 }, (_, i) => i);
    rng.shuffle(arr);
    expect([...arr].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(arr).not.toEqual(Array.from({ length: 100 }, (_, i) => i));
    // each position of a 3-element shuffle is uniform over the 6 permutations
    const perms = new Map<string, number>();
    for (let i = 0; i < 60000; i++) {
      const key = rng.shuffle(["a", "b", "c"]).join("");
      perms.set(key, (perms.get(key) ?? 0) + 1);
    }
    expect(perms.size).toBe(6);
    for (const c of perms.values()) expect(Math.abs(c - 10000)).toBeLessThan(500);
  });
});

describe("deterministicLog", () => {
  test("agrees with Math.log to ~1 ulp over many magnitudes", () => {
    const rng = new Rng(1);
    for (let i = 0; i < 5000; i++) {
      const x = rng.uniform() * 10 ** Math.floor(rng.uniform() * 40 - 20) + 1e-300;
      const ref = Math.log(x);
      expect(Math.abs(deterministicLog(x) - ref)).toBeLessThanOrEqual(
        4e-16 * Math.max(1, Math.abs(ref)),
      );
    }
    expect(deterministicLog(1)).toBe(0);
    expect(Math.abs(deterministicLog(5e-324) - Math.log(5e-324))).toBeLessThan(1e-12);
    expect(() => deterministicLog(0)).toThrow(/> 0/);
  });
});
