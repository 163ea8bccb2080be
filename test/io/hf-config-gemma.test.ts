// gemma3_text config.json reading: resolved values equal what transformers' Gemma3TextConfig
// resolves for the same files (fixture: scripts/fixtures/make_tiny_gemma.py -> config-gemma/), in
// the transformers 4 layout of the published checkpoints (top-level rope_theta, rope_scaling,
// rope_local_base_freq), the transformers 5 layout (per-layer-type rope_parameters) and with
// defaults only; one-line errors naming the field.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  type Gemma3TextConfig,
  parseModelConfig,
  type RopeParams,
  readModelConfig,
} from "../../src/io/hf-config.js";
import { nonEmpty } from "../helpers/fixture-cases.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "config-gemma");
const expected = JSON.parse(await readFile(join(FIXTURES, "expected.json"), "utf8")) as Record<
  string,
  Record<string, unknown>
>;

/** Our RoPE parameters in transformers' rope_parameters form. */
function hfRope(p: RopeParams): Record<string, unknown> {
  const { rope_scaling: s } = p;
  if (s === null) return { rope_theta: p.rope_theta, rope_type: "default" };
  return { ...s, rope_theta: p.rope_theta };
}

const ACTIVATIONS: Record<string, Gemma3TextConfig["gelu_approximate"]> = {
  gelu_pytorch_tanh: "tanh",
  gelu: "none",
};

describe("gemma3_text matches transformers' resolved configuration", () => {
  test.each(nonEmpty(Object.keys(expected), "config-gemma/expected.json"))("%s", async (name) => {
    const config = await readModelConfig(join(FIXTURES, name));
    if (!(config.recognized && config.model_type === "gemma3_text"))
      throw new Error(`${name}: not read as gemma3_text`);
    const want = expected[name];
    const { rope_parameters: rope, hidden_activation: activation, ...plain } = want;
    const picked = Object.fromEntries(
      Object.keys(plain).map((k) => [k, (config as unknown as Record<string, unknown>)[k]]),
    );
    expect(picked).toEqual(plain);
    expect(config.gelu_approximate).toBe(ACTIVATIONS[activation as string]);
    expect({
      full_attention: hfRope(config.rope_full),
      sliding_attention: hfRope(config.rope_sliding),
    }).toEqual(rope);
  });
});

const base = {
  model_type: "gemma3_text",
  vocab_size: 10,
  hidden_size: 8,
  intermediate_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
};

function expectError(raw: unknown, ...fragments: string[]): void {
  let message = "";
  try {
    parseModelConfig(raw, "config.json");
  } catch (error) {
    message = (error as Error).message;
  }
  expect(message, "expected an error").not.toBe("");
  expect(message).not.toContain("\n");
  for (const f of fragments) expect(message).toContain(f);
}

test("gemma3_text errors name the file and the field", () => {
  expectError({ ...base, layer_types: ["full_attention"] }, '"layer_types"', "a list of 2");
  expectError({ ...base, layer_types: ["full_attention", "local"] }, '"layer_types"');
  expectError({ ...base, hidden_activation: "relu" }, '"hidden_activation"', "gelu_pytorch_tanh");
  expectError({ ...base, use_bidirectional_attention: true }, '"use_bidirectional_attention"');
  expectError({ ...base, sliding_window: 0 }, '"sliding_window"', "positive integer");
  expectError(
    { ...base, rope_parameters: { rope_type: "default", rope_theta: 5 } },
    '"rope_parameters.rope_theta"',
    "full_attention / sliding_attention",
  );
  expectError(
    { ...base, rope_parameters: { full_attention: { rope_type: "yarn", factor: 2 } } },
    '"rope_parameters.full_attention.rope_type"',
  );
  expectError({ ...base, num_key_value_heads: 3 }, '"num_key_value_heads"', "divisor");
});
