// Saving a model as a Hugging Face checkpoint directory: config.json and the tokenizer / generation
// files copied from the source directory, every parameter written to model.safetensors in the
// dtype its source checkpoint used (f32 unless told otherwise). The directory appears atomically:
// it is written under a temporary name and renamed, so a failure leaves no half-written output.

import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { openCheckpoint, type TensorToWrite, writeSafetensors } from "../io/safetensors.js";
import type { CausalLM } from "./model.js";
import { tensorToF32 } from "./weights.js";

/** Files of a model directory that are not weights and are kept as they are. */
const COPIED =
  /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|chat_template\.jinja|vocab\.json|merges\.txt)$/;

export interface SaveModelOptions {
  /** Source model directory: its non-weight files are copied and its tensor dtypes kept. */
  sourceDir: string;
  /** Overrides the stored dtype of every floating-point tensor. */
  dtype?: "F32" | "BF16" | "F16";
}

export async function saveModel(
  model: CausalLM,
  outDir: string,
  options: SaveModelOptions,
): Promise<void> {
  const quantized = model.linears().filter((l) => {
    const kind = model.weightStorage(l.path);
    return kind === "int8" || kind === "nf4";
  });
  if (quantized.length > 0) {
    throw new Error(
      `saveModel: ${quantized.length} linear weights are quantized (e.g. ${quantized[0].path}: ${model.weightStorage(quantized[0].path)}); ` +
        "save the model before quantizeLinears",
    );
  }
  if (existsSync(outDir) && (await readdir(outDir)).length > 0) {
    throw new Error(`${outDir}: exists and is not empty; choose a new output directory`);
  }
  const source = await openCheckpoint(options.sourceDir);
  const sourceDtypes = new Map([...source.entries].map(([name, e]) => [name, e.dtype]));
  await source.close();
  const tmp = join(dirname(outDir), `.${basename(outDir)}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const tensors: TensorToWrite[] = [];
    for (const [name, param] of model.params) {
      const src = sourceDtypes.get(name);
      const dtype = options.dtype ?? (src === "BF16" || src === "F16" ? src : "F32");
      tensors.push({ name, dtype, shape: [...param.shape], data: tensorToF32(param) }); // 16-bit weights widened
    }
    await writeSafetensors(join(tmp, "model.safetensors"), tensors, { format: "pt" });
    for (const file of await readdir(options.sourceDir)) {
      if (COPIED.test(file)) await copyFile(join(options.sourceDir, file), join(tmp, file));
    }
    await rm(outDir, { recursive: true, force: true });
    await rename(tmp, outDir);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
}
