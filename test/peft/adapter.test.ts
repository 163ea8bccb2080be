// Config JSON, target matching, adapter files, conversion and gradient cache against what PEFT 0.21
// writes (test/fixtures/peft: config-keys.json, plain/, converted/, conversion-inputs.safetensors),
// plus the error cases (targets matching nothing, r too large, NaN gradient, mismatched files).

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { SafetensorsFile, writeSafetensors } from "../../src/io/safetensors.js";
import { loadAdapter, saveAdapter } from "../../src/peft/adapter-io.js";
import { LoraConfig, LoraGAConfig, loraScaling, moduleRankAlpha } from "../../src/peft/config.js";
import { convertAdapter, convertConfig } from "../../src/peft/convert.js";
import { loadGradients, saveGradients } from "../../src/peft/gradient-cache.js";
import { loraGAInit } from "../../src/peft/init/lora-ga.js";
import { selectTargets } from "../../src/peft/targets.js";
import { Rng } from "../../src/util/random.js";
import { nonEmpty } from "../helpers/fixture-cases.js";
import { FIXTURES, get, linearInfos, maxAbsDiff, mm, readAll, readMeta } from "./peft-fixtures.js";

const meta = readMeta();
const llama = linearInfos(meta, "llama");
const gpt2 = linearInfos(meta, "gpt2");
const tmp = mkdtempSync(join(tmpdir(), "loraga-peft-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** PEFT turns target_modules lists into sets: compare them order-free. */
function normalise(d: Record<string, unknown>): Record<string, unknown> {
  const out = { ...d };
  if (Array.isArray(out.target_modules))
    out.target_modules = [...(out.target_modules as string[])].sort();
  return out;
}
const readJson = (p: string) => JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;

describe("adapter_config.json matches PEFT 0.21", () => {
  const fixtures = readJson(`${FIXTURES}config-keys.json`) as Record<
    string,
    { args: Record<string, unknown>; dict: Record<string, unknown> }
  >;
  test.each(nonEmpty(Object.keys(fixtures), "peft/config-keys.json"))(
    "LoraConfig(...).to_dict() for %s",
    (name) => {
      const { args, dict } = fixtures[name];
      const ga = args.lora_ga_config as
        | { direction: "A2rBr"; scale: "gd_scale"; stable_gamma: number }
        | undefined;
      const { lora_ga_config: _ga, ...rest } = args;
      const config =
        ga !== undefined
          ? new LoraGAConfig({
              ...rest,
              direction: ga.direction,
              scale: ga.scale,
              stable_gamma: ga.stable_gamma,
            })
          : new LoraConfig(rest);
      expect(normalise(config.toAdapterConfigJson())).toEqual(normalise(dict));
    },
  );
  test("a saved plain adapter: same config and the same tensor keys/shapes as PEFT's save_pretrained", async () => {
    const peftConfig = readJson(`${FIXTURES}plain/adapter_config.json`);
    const config = new LoraConfig({
      r: 2,
      lora_alpha: 4,
      target_modules: ["q_proj", "v_proj"],
      task_type: "CAUSAL_LM",
      inference_mode: true,
    });
    const weights = new Map(
      selectTargets(config, llama).map((l) => [
        l.path,
        { A: new Float32Array(2 * l.inFeatures).fill(0.5), B: new Float32Array(l.outFeatures * 2) },
      ]),
    );
    const dir = join(tmp, "plain");
    await saveAdapter(dir, config, weights, { init: { method: "default" } });
    expect(normalise(readJson(join(dir, "adapter_config.json")))).toEqual(normalise(peftConfig));
    const ours = await SafetensorsFile.open(join(dir, "adapter_model.safetensors"));
    const theirs = await SafetensorsFile.open(`${FIXTURES}plain/adapter_model.safetensors`);
    const shapes = (f: SafetensorsFile) =>
      Object.fromEntries([...f.entries].map(([k, e]) => [k, [e.dtype, ...e.shape]]));
    expect(shapes(ours)).toEqual(shapes(theirs));
    expect(ours.metadata.format).toBe("pt");
    await ours.close();
    await theirs.close();
    // and our loader reads PEFT's file
    const loaded = await loadAdapter(`${FIXTURES}plain`, llama);
    expect([...loaded.weights.keys()].sort()).toEqual([
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.v_proj",
    ]);
    expect(loaded.init).toBeNull();
    const back = await loadAdapter(dir, llama);
    expect(back.init).toEqual({ method: "default" });
  });
  test("validation errors name the field", () => {
    expect(() => new LoraConfig({ r: 0 })).toThrow(/r must be a positive integer/);
    expect(() => new LoraConfig({ lora_dropout: 1 })).toThrow(/lora_dropout/);
    expect(() => new LoraConfig({ target_modules: "(" })).toThrow(
      /target_modules is not a valid regular expression/,
    );
    expect(() => new LoraGAConfig({ scale: "huge" as never })).toThrow(/scale must be one of/);
    expect(() => new LoraGAConfig({ direction: "BA" as never })).toThrow(
      /direction must be one of/,
    );
    expect(() => new LoraGAConfig({ stable_gamma: 0 })).toThrow(/stable_gamma/);
    expect(() =>
      LoraConfig.fromAdapterConfigJson({ peft_type: "LORA", use_dora: true }, "x.json"),
    ).toThrow(/x.json: use_dora = true is not supported/);
    expect(new LoraGAConfig({ scale: "weight_svd" }).scale).toBe("weightS");
    expect(new LoraGAConfig({ scale: "gd" }).toAdapterConfigJson().lora_ga_config).toEqual({
      direction: "ArB2r",
      scale: "gd_scale",
      stable_gamma: 16,
    });
  });
});

describe("target_modules semantics (PEFT check_target_module_exists)", () => {
  const paths = (c: ConstructorParameters<typeof LoraConfig>[0]) =>
    selectTargets(new LoraConfig(c), llama).map((l) => l.path.split(".").pop());
  test("list: exact name or '.'-suffix; string: full regex match; exclude wins", () => {
    expect(paths({ target_modules: ["q_proj", "self_attn.v_proj"] })).toEqual(["q_proj", "v_proj"]);
    expect(paths({ target_modules: ".*\\.(q|v)_proj" })).toEqual(["q_proj", "v_proj"]);
    const withHead = [...llama, { ...llama[0], path: "lm_head", weightName: "lm_head.weight" }];
    expect(
      selectTargets(new LoraConfig({ target_modules: "all-linear" }), withHead).map((l) => l.path),
    ).toEqual(llama.map((l) => l.path));
    expect(paths({ target_modules: ".*_proj", exclude_modules: ["gate_proj", "up_proj"] })).toEqual(
      ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
    );
  });
  test("nothing matched lists the model's linear modules", () => {
    // "proj" is not a '.'-suffix of "q_proj"; the regex "q_proj" does not full-match a path
    for (const t of [["proj"], "q_proj"]) {
      expect(() => selectTargets(new LoraConfig({ target_modules: t }), llama)).toThrow(
        /matched none.*\n.*model\.layers\.0\.self_attn\.q_proj \(16 -> 16\)/s,
      );
    }
  });
  test("rank_pattern / alpha_pattern and scaling", () => {
    const c = new LoraConfig({
      r: 4,
      lora_alpha: 8,
      rank_pattern: { v_proj: 2 },
      alpha_pattern: { "self_attn.v_proj": 6 },
    });
    expect(moduleRankAlpha(c, "model.layers.0.self_attn.v_proj")).toEqual({ r: 2, alpha: 6 });
    expect(moduleRankAlpha(c, "model.layers.0.self_attn.q_proj")).toEqual({ r: 4, alpha: 8 });
    expect(loraScaling(8, 4, false)).toBe(2);
    expect(loraScaling(8, 4, true)).toBe(4);
  });
});

describe("conversion to a plain LoRA on the original base (docs/lora-ga-spec.md §8)", () => {
  test("equals PEFT's save_pretrained(path_initial_model_for_weight_conversion) and W + s'B'A' == W' + s B1 A1", async () => {
    const inputs = await readAll("conversion-inputs.safetensors");
    const config = new LoraGAConfig({ r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj"] });
    const targets = selectTargets(config, llama);
    const trained = new Map(
      targets.map((l) => [
        l.path,
        { A: get(inputs, `${l.path}.A1`), B: get(inputs, `${l.path}.B1`) },
      ]),
    );
    const initial = new Map(
      targets.map((l) => [
        l.path,
        { A: get(inputs, `${l.path}.A0`), B: get(inputs, `${l.path}.B0`) },
      ]),
    );
    const converted = convertAdapter(config, trained, initial);
    const dir = join(tmp, "converted");
    await saveAdapter(
      dir,
      converted.config.with({
        inference_mode: true,
        auto_mapping: {
          base_model_class: "LlamaForCausalLM",
          parent_library: "transformers.models.llama.modeling_llama",
        },
      }),
      converted.weights,
    );
    expect(normalise(readJson(join(dir, "adapter_config.json")))).toEqual(
      normalise(readJson(`${FIXTURES}converted/adapter_config.json`)),
    );
    const peft = await readAll("converted/adapter_model.safetensors");
    const oursFile = await SafetensorsFile.open(join(dir, "adapter_model.safetensors"));
    const oursKeys = [...oursFile.entries.keys()].sort();
    await oursFile.close();
    expect(oursKeys).toEqual([...peft.keys()].sort());
    const s = loraScaling(4, 2, false);
    const s2 = loraScaling(converted.config.lora_alpha, converted.config.r, false);
    expect(s2).toBe(s);
    for (const l of targets) {
      const w = converted.weights.get(l.path) as { A: Float32Array; B: Float32Array };
      expect(maxAbsDiff(w.A, get(peft, `base_model.model.${l.path}.lora_A.weight`))).toBe(0);
      expect(maxAbsDiff(w.B, get(peft, `base_model.model.${l.path}.lora_B.weight`))).toBe(0);
      const { inFeatures: n, outFeatures: m } = l;
      const W = get(inputs, `${l.path}.W`);
      const Wp = get(inputs, `${l.path}.Wprime`);
      const lhs = mm(w.B, w.A, m, 4, n).map((v, i) => W[i] + s2 * v);
      const rhs = mm(get(inputs, `${l.path}.B1`), get(inputs, `${l.path}.A1`), m, 2, n).map(
        (v, i) => Wp[i] + s * v,
      );
      expect(maxAbsDiff(lhs, rhs)).toBeLessThan(1e-6);
    }
  });
  test("rsLoRA: alpha' = sqrt(2) alpha keeps s; patterns doubled; rslora + patterns refused", () => {
    const c = convertConfig(new LoraConfig({ r: 4, lora_alpha: 8, use_rslora: true }));
    expect(c.r).toBe(8);
    expect(loraScaling(c.lora_alpha, c.r, true)).toBeCloseTo(loraScaling(8, 4, true), 12);
    const p = convertConfig(
      new LoraConfig({
        r: 4,
        lora_alpha: 8,
        rank_pattern: { v_proj: 2 },
        alpha_pattern: { v_proj: 3 },
      }),
    );
    expect(p.rank_pattern).toEqual({ v_proj: 4 });
    expect(p.alpha_pattern).toEqual({ v_proj: 6 });
    expect(p.init_lora_weights).toBe(true);
    expect(() =>
      convertConfig(new LoraConfig({ use_rslora: true, rank_pattern: { v_proj: 2 } })),
    ).toThrow(/use_rslora together with rank_pattern/);
  });
});

describe("gradient cache and bad inputs", () => {
  test("round trip keyed by module path, stored layout (GPT-2 Conv1D is (in, out))", async () => {
    const t = await readAll("gpt2.safetensors");
    const targets = selectTargets(new LoraConfig({ target_modules: ["c_attn", "c_fc"] }), gpt2);
    const grads = new Map(
      targets.map((l) => [
        l.path,
        {
          shape: [l.inFeatures, l.outFeatures] as [number, number],
          data: get(t, `grad.${l.path}`),
        },
      ]),
    );
    const file = join(tmp, "grads.safetensors");
    await saveGradients(file, grads, { batches: "1" });
    const back = await loadGradients(file, targets);
    expect(back.metadata.batches).toBe("1");
    for (const l of targets)
      expect(
        maxAbsDiff(
          (back.grads.get(l.path) as { data: Float32Array }).data,
          get(t, `grad.${l.path}`),
        ),
      ).toBe(0);
    // the same file for a model whose c_attn is (out, in) names module and shapes
    const swapped = targets.map((l) => ({ ...l, fanInFanOut: false }));
    await expect(loadGradients(file, swapped)).rejects.toThrow(
      /module transformer\.h\.0\.attn\.c_attn has shape \[16, 48\], but the model's weight is \[48, 16\]/,
    );
    await expect(loadGradients(file, gpt2)).rejects.toThrow(
      /no gradient for module transformer\.h\.0\.attn\.c_proj \[16, 16\]/,
    );
  });
  test("NaN in a gradient names the module (cache and init)", async () => {
    const file = join(tmp, "nan.safetensors");
    const l = llama[2];
    const data = new Float32Array(l.inFeatures * l.outFeatures);
    data[5] = Number.NaN;
    await writeSafetensors(file, [
      { name: l.path, dtype: "F32", shape: [l.outFeatures, l.inFeatures], data },
    ]);
    await expect(loadGradients(file, [l])).rejects.toThrow(
      /gradient of module model\.layers\.0\.self_attn\.v_proj contains NaN/,
    );
    const ctx = {
      path: l.path,
      inFeatures: l.inFeatures,
      outFeatures: l.outFeatures,
      fanInFanOut: false,
      r: 2,
      scaling: 1,
      grad: data,
      rng: new Rng(0),
    };
    expect(() =>
      loraGAInit(ctx, {
        direction: "ArB2r",
        scale: "stable",
        stableGamma: 16,
        variant: "official",
      }),
    ).toThrow(/v_proj.*gradient contains NaN/);
  });
  test("2r > min(out, in) names the module", () => {
    const l = llama[2]; // v_proj (16 -> 8)
    const ctx = {
      path: l.path,
      inFeatures: 16,
      outFeatures: 8,
      fanInFanOut: false,
      r: 5,
      scaling: 1,
      grad: new Float32Array(128).fill(1),
      rng: new Rng(0),
    };
    expect(() =>
      loraGAInit(ctx, { direction: "ArB2r", scale: "stable", stableGamma: 16, variant: "peft" }),
    ).toThrow(
      /module model\.layers\.0\.self_attn\.v_proj \(in 16, out 8\): LoRA-GA needs 2r <= min\(out, in\) = 8, got r=5/,
    );
  });
  test("adapter whose shapes do not fit the model names the module", async () => {
    const config = new LoraConfig({ r: 2, lora_alpha: 4, target_modules: ["v_proj"] });
    const dir = join(tmp, "bad");
    await saveAdapter(
      dir,
      config,
      new Map([
        [
          "model.layers.0.self_attn.v_proj",
          { A: new Float32Array(2 * 16), B: new Float32Array(16 * 2) },
        ],
      ]),
    );
    await expect(loadAdapter(dir, llama)).rejects.toThrow(
      /module model\.layers\.0\.self_attn\.v_proj lora_B\.weight has shape \[16, 2\], expected \[8, 2\]/,
    );
  });
});
