// config.json reading: resolved values equal what transformers resolves for the same files
// (fixture: scripts/fixtures/make_config_cases.py), in both the transformers 4 (top-level
// rope_theta / rope_scaling) and 5 (rope_parameters) layouts; one-line errors naming the field.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseModelConfig, readModelConfig } from "../../src/io/hf-config.js";
import { nonEmpty } from "../helpers/fixture-cases.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "config");
const expected = JSON.parse(await readFile(join(FIXTURES, "expected.json"), "utf8")) as Record<
  string,
  Record<string, unknown>
>;

describe("matches transformers' resolved configuration", () => {
  test.each(nonEmpty(Object.keys(expected), "config/expected.json"))("%s", async (name) => {
    const config = await readModelConfig(join(FIXTURES, name));
    expect(config.recognized).toBe(true);
    const picked = Object.fromEntries(
      Object.keys(expected[name]).map((k) => [
        k,
        (config as unknown as Record<string, unknown>)[k],
      ]),
    );
    expect(picked).toEqual(expected[name]);
  });

  test("qwen2 has q/k/v biases and no o_proj bias; llama follows attention_bias", async () => {
    const qwen = await readModelConfig(join(FIXTURES, "qwen2-v4"));
    const llama = await readModelConfig(join(FIXTURES, "llama-v5"));
    expect(
      qwen.recognized && qwen.model_type === "qwen2" && [qwen.attention_bias, qwen.o_proj_bias],
    ).toEqual([true, false]);
    expect(
      llama.recognized && llama.model_type === "llama" && [llama.attention_bias, llama.o_proj_bias],
    ).toEqual([true, true]);
  });
});

// qwen3, smollm3, phi3 defaults and LongRoPE (scripts/fixtures/make_tiny_archs.py)
const archs = JSON.parse(await readFile(join(FIXTURES, "archs.json"), "utf8")) as Record<
  string,
  { raw: Record<string, unknown>; expected: Record<string, unknown> }
>;

test.each(nonEmpty(Object.keys(archs), "config/archs.json"))(
  "%s resolves as transformers does",
  (name) => {
    const { raw, expected } = archs[name];
    const config = parseModelConfig(raw) as unknown as Record<string, unknown>;
    const picked = Object.fromEntries(Object.keys(expected).map((k) => [k, config[k]]));
    const scaling = expected.rope_scaling as Record<string, unknown> | undefined;
    if (scaling !== undefined) {
      const ours = config.rope_scaling as Record<string, unknown>;
      picked.rope_scaling = Object.fromEntries(Object.keys(scaling).map((k) => [k, ours[k]]));
    }
    expect(picked).toEqual(expected);
  },
);

test("smollm3 no_rope_layers and phi3 rope fields are validated", () => {
  const small = { vocab_size: 10, hidden_size: 16, intermediate_size: 16, num_attention_heads: 2 };
  expect(() =>
    parseModelConfig({
      ...small,
      model_type: "smollm3",
      num_hidden_layers: 2,
      no_rope_layers: [1],
    }),
  ).toThrow(/"no_rope_layers" must be a list of 2 zeros and ones/);
  const phi3 = { ...small, model_type: "phi3", num_hidden_layers: 1 };
  expect(() => parseModelConfig({ ...phi3, partial_rotary_factor: 0.375 })).toThrow(
    /"partial_rotary_factor" must be at most 1, giving an even rotary dim/,
  );
  expect(() =>
    parseModelConfig({
      ...phi3,
      rope_scaling: { type: "longrope", short_factor: [1], long_factor: [1] },
    }),
  ).toThrow(/"rope_scaling.short_factor" must be a list of 4 positive numbers/);
  expect(() => parseModelConfig({ ...phi3, rope_scaling: { type: "linear", factor: 2 } })).toThrow(
    /one of default, longrope/,
  );
});

const base = {
  model_type: "llama",
  vocab_size: 10,
  hidden_size: 8,
  intermediate_size: 16,
  num_hidden_layers: 1,
  num_attention_heads: 2,
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

describe("errors name the file and the field", () => {
  test("wrong types and missing fields", () => {
    expectError(
      { ...base, hidden_size: "abc" },
      'config.json: "hidden_size" must be a positive integer, got "abc"',
    );
    expectError({ ...base, hidden_size: 0 }, '"hidden_size"', "positive integer", "got 0");
    expectError({ ...base, num_hidden_layers: 1.5 }, '"num_hidden_layers"', "1.5");
    const { vocab_size: _, ...missing } = base;
    expectError(missing, '"vocab_size"', "missing");
    expectError({ ...base, rms_norm_eps: -1 }, '"rms_norm_eps"', "positive number");
    expectError({ ...base, tie_word_embeddings: "yes" }, '"tie_word_embeddings"', "true or false");
    expectError({ ...base, num_key_value_heads: 3 }, '"num_key_value_heads"', "divisor");
    expectError({ ...base, hidden_size: 9 }, '"hidden_size"', "multiple");
    expectError({ ...base, eos_token_id: [1, "x"] }, '"eos_token_id"');
    expectError({ ...base, model_type: 5 }, '"model_type"', "string");
    expectError([1], "config.json", "JSON object");
    expectError(
      { model_type: "gpt2", vocab_size: 5, n_positions: 4, n_embd: 6, n_layer: 1, n_head: 4 },
      '"n_embd"',
    );
  });

  test("RoPE parameters", () => {
    expectError(
      { ...base, rope_scaling: { rope_type: "yarn", factor: 4 } },
      '"rope_scaling.rope_type"',
      "yarn",
    );
    expectError(
      { ...base, rope_parameters: { rope_type: "linear" } },
      '"rope_parameters.factor"',
      "missing",
    );
    expectError(
      { ...base, rope_parameters: { full_attention: { rope_type: "default" } } },
      '"rope_parameters.full_attention"',
    );
    expectError(
      {
        ...base,
        rope_parameters: {
          rope_type: "llama3",
          factor: 8,
          low_freq_factor: 4,
          high_freq_factor: 1,
        },
      },
      '"rope_parameters.high_freq_factor"',
    );
    expectError({ ...base, rope_theta: "big" }, '"rope_theta"');
  });

  test("unknown model types are returned, not rejected", () => {
    const config = parseModelConfig({ model_type: "bert", hidden_size: 3 });
    expect(config).toEqual({
      model_type: "bert",
      recognized: false,
      raw: { model_type: "bert", hidden_size: 3 },
    });
  });
});

describe("files", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "loraga-config-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("malformed JSON reports line and column", async () => {
    await writeFile(
      join(dir, "config.json"),
      '{\n  "model_type": "llama",\n  "hidden_size": 8,,\n}',
    );
    await expect(readModelConfig(dir)).rejects.toThrow(
      /config\.json: invalid JSON: .* at line 3, column 20$/,
    );
  });

  test("duplicate keys are rejected", async () => {
    await writeFile(join(dir, "config.json"), '{"model_type": "llama", "model_type": "gpt2"}');
    await expect(readModelConfig(dir)).rejects.toThrow(/config\.json.*duplicate key "model_type"/);
  });

  test("missing file", async () => {
    await expect(readModelConfig(join(dir, "nope"))).rejects.toThrow(
      /nope\/config\.json: cannot read/,
    );
  });
});
