// ropeTables vs Hugging Face transformers' LlamaRotaryEmbedding (fixture from
// scripts/fixtures/make_rope_tables.py): inverse frequencies for rope_type default, linear and
// llama3, and the cos/sin halves at positions up to 131071.

import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import {
  type RopeTableConfig,
  ropeInverseFrequencies,
  ropeTables,
} from "../../src/kernels/ref/rope.js";
import { expectAllclose } from "../helpers/allclose.js";
import { nonEmpty } from "../helpers/fixture-cases.js";

interface FixtureCase {
  name: string;
  head_dim: number;
  theta: number;
  rope_parameters: {
    rope_type: string;
    factor?: number;
    low_freq_factor?: number;
    high_freq_factor?: number;
    original_max_position_embeddings?: number;
  };
  positions: number[];
  inv_freq: number[];
  cos: number[];
  sin: number[];
}

const fixture = JSON.parse(
  readFileSync(new URL("../fixtures/rope_tables.json", import.meta.url), "utf8"),
) as {
  cases: FixtureCase[];
};

function configOf(c: FixtureCase): RopeTableConfig {
  const p = c.rope_parameters;
  if (p.rope_type === "default") return { theta: c.theta };
  if (p.rope_type === "linear")
    return { theta: c.theta, scaling: { type: "linear", factor: p.factor ?? NaN } };
  return {
    theta: c.theta,
    scaling: {
      type: "llama3",
      factor: p.factor ?? NaN,
      lowFreqFactor: p.low_freq_factor ?? NaN,
      highFreqFactor: p.high_freq_factor ?? NaN,
      originalMaxPositionEmbeddings: p.original_max_position_embeddings ?? NaN,
    },
  };
}

describe("ropeTables vs transformers", () => {
  for (const c of nonEmpty(fixture.cases, "rope_tables.json")) {
    test(c.name, () => {
      const config = configOf(c);
      // inv_freq: float32 arithmetic in the same order as torch, so equal to the last bit
      expectAllclose(ropeInverseFrequencies(c.head_dim, config), c.inv_freq, {
        rtol: 0,
        atol: 0,
        label: `${c.name} inv_freq`,
      });
      const { cos, sin } = ropeTables(c.head_dim, c.positions, config);
      expect(cos.length).toBe(c.positions.length * (c.head_dim / 2));
      // angles are float32 products (equal); cos/sin of them rounded to float32 by both sides,
      // which may differ in the last ulp (libm vs V8)
      expectAllclose(cos, c.cos, { rtol: 0, atol: 2e-7, label: `${c.name} cos` });
      expectAllclose(sin, c.sin, { rtol: 0, atol: 2e-7, label: `${c.name} sin` });
    });
  }

  test("rejects an odd head dim and a non-positive theta", () => {
    expect(() => ropeTables(7, [0], { theta: 10000 })).toThrow(/even/);
    expect(() => ropeTables(8, [0], { theta: 0 })).toThrow(/theta/);
  });
});
