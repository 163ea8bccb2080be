// Saving and loading PEFT adapter directories, byte-compatible with PEFT 0.21's save_pretrained:
//   <dir>/adapter_config.json        LoraConfig.toAdapterConfigJson(), indent 2, keys sorted
//   <dir>/adapter_model.safetensors  "base_model.model.<module path>.lora_A.weight" (r, in) and
//                                    ".lora_B.weight" (out, r); __metadata__ {"format": "pt"}
// Both files are written atomically (io/atomic-write.ts, io/safetensors.ts).
// How an init adapter was made (method, options, whether the base weight was offset) is recorded
// as the extra __metadata__ entry "loraga_init" (a JSON string). PEFT ignores safetensors
// metadata other than "format", so the adapter still loads there; training reads it back to
// re-create the offset base weight W' = W - s B0 A0.
// Loading validates every tensor against the model's linear layers (module exists, targeted,
// shapes (r, in) / (out, r) with r from rank_pattern, finite values) and names the module on error.

import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic-write.js";
import { parseJsonStrict } from "../io/json.js";
import { makeDirs } from "../io/output-paths.js";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "../io/safetensors.js";
import type { LinearInfo } from "../models/linear.js";
import { shapeString } from "../tensor/shape.js";
import { LoraConfig, moduleRankAlpha } from "./config.js";
import { selectTargets } from "./targets.js";

const ADAPTER_CONFIG_NAME = "adapter_config.json";
export const ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors";
const INIT_METADATA_KEY = "loraga_init";
const KEY_PREFIX = "base_model.model.";
/** adapter_config.json is small; refuse anything absurd before reading it. */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

export interface AdapterWeights {
  /** (r, in) */
  A: Float32Array;
  /** (out, r) */
  B: Float32Array;
}

function loraKey(path: string, which: "A" | "B"): string {
  return `${KEY_PREFIX}${path}.lora_${which}.weight`;
}

export interface SaveAdapterOptions {
  /** Stored dtype of A and B (PEFT stores the adapter in the base weight's dtype). Default F32. */
  dtype?: "F32" | "BF16" | "F16";
  /** How the adapter was initialised; written as JSON under __metadata__.loraga_init. */
  init?: Readonly<Record<string, unknown>>;
}

/** Writes adapter_config.json and adapter_model.safetensors into `dir` (created if missing). */
export async function saveAdapter(
  dir: string,
  config: LoraConfig,
  weights: ReadonlyMap<string, AdapterWeights>,
  options: SaveAdapterOptions = {},
): Promise<void> {
  const dtype = options.dtype ?? "F32";
  const tensors: TensorToWrite[] = [];
  for (const [path, w] of weights) {
    const r = moduleRankAlpha(config, path).r;
    if (w.A.length % r !== 0 || w.B.length % r !== 0) {
      throw new Error(
        `saveAdapter ${path}: A/B sizes ${w.A.length}/${w.B.length} do not fit r=${r}`,
      );
    }
    tensors.push({ name: loraKey(path, "A"), dtype, shape: [r, w.A.length / r], data: w.A });
    tensors.push({ name: loraKey(path, "B"), dtype, shape: [w.B.length / r, r], data: w.B });
  }
  const metadata: Record<string, string> = { format: "pt" };
  if (options.init !== undefined) metadata[INIT_METADATA_KEY] = JSON.stringify(options.init);
  await makeDirs(dir);
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_NAME), tensors, metadata);
  await writeFileAtomic(
    join(dir, ADAPTER_CONFIG_NAME),
    `${JSON.stringify(config.toAdapterConfigJson(), null, 2)}\n`,
  );
}

export interface LoadedAdapter {
  config: LoraConfig;
  weights: Map<string, AdapterWeights>;
  /** The loraga_init record, or null for adapters made elsewhere. */
  init: Record<string, unknown> | null;
}

/** Reads and parses <dir>/adapter_config.json. */
async function readAdapterConfig(dir: string): Promise<LoraConfig> {
  const path = join(dir, ADAPTER_CONFIG_NAME);
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  if (size > MAX_CONFIG_BYTES)
    throw new Error(`${path}: ${size} bytes is too large for an adapter config`);
  return LoraConfig.fromAdapterConfigJson(
    parseJsonStrict(await readFile(path, "utf8"), path),
    path,
  );
}

/**
 * Loads an adapter directory and checks it against the model's linear layers: every tensor is a
 * lora_A/lora_B of a linear module the config targets, with shapes (r, in) / (out, r); every
 * targeted module has both; values are finite.
 */
export async function loadAdapter(
  dir: string,
  linears: readonly LinearInfo[],
): Promise<LoadedAdapter> {
  const config = await readAdapterConfig(dir);
  const file = await SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS_NAME));
  try {
    const byPath = new Map(linears.map((l) => [l.path, l]));
    const targets = new Set(selectTargets(config, linears).map((l) => l.path));
    const weights = new Map<string, AdapterWeights>();
    const where = file.path;
    for (const [name, entry] of file.entries) {
      const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(name);
      if (m === null)
        throw new Error(
          `${where}: unexpected tensor ${JSON.stringify(name)} (only lora_A/lora_B weights are supported)`,
        );
      const path = m[1];
      const which = m[2] as "A" | "B";
      const info = byPath.get(path);
      if (info === undefined)
        throw new Error(
          `${where}: tensor ${name} is for module ${path}, which the model does not have`,
        );
      if (!targets.has(path))
        throw new Error(
          `${where}: module ${path} has weights but target_modules does not select it`,
        );
      const r = moduleRankAlpha(config, path).r;
      const expected = which === "A" ? [r, info.inFeatures] : [info.outFeatures, r];
      if (
        entry.shape.length !== 2 ||
        entry.shape[0] !== expected[0] ||
        entry.shape[1] !== expected[1]
      ) {
        throw new Error(
          `${where}: module ${path} lora_${which}.weight has shape ${shapeString(entry.shape)}, expected ${shapeString(expected)}` +
            ` (r=${r}, in=${info.inFeatures}, out=${info.outFeatures})`,
        );
      }
      const data = await file.readF32(name);
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i]))
          throw new Error(`${where}: module ${path} lora_${which}.weight contains ${data[i]}`);
      }
      const w = weights.get(path) ?? { A: new Float32Array(0), B: new Float32Array(0) };
      if (which === "A") w.A = data;
      else w.B = data;
      weights.set(path, w);
    }
    for (const path of targets) {
      const w = weights.get(path);
      if (w === undefined || w.A.length === 0 || w.B.length === 0) {
        throw new Error(
          `${where}: targeted module ${path} is missing lora_${w === undefined || w.A.length === 0 ? "A" : "B"}.weight`,
        );
      }
    }
    let init: Record<string, unknown> | null = null;
    const raw = file.metadata[INIT_METADATA_KEY];
    if (raw !== undefined) {
      const parsed = parseJsonStrict(raw, `${where}: __metadata__.${INIT_METADATA_KEY}`);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        throw new Error(`${where}: __metadata__.${INIT_METADATA_KEY} must be a JSON object`);
      }
      init = parsed as Record<string, unknown>;
    }
    return { config, weights, init };
  } finally {
    await file.close();
  }
}
