// Saving a model as a Hugging Face checkpoint directory: the tokenizer / generation files copied
// from the source directory, every parameter written to model.safetensors in the dtype its source
// checkpoint used (f32 unless told otherwise; weights kept off the heap included), and config.json copied with its dtype set to what
// was stored: "dtype" (transformers' current name, as save_pretrained writes it) and, where the
// source file has it, the older "torch_dtype", so transformers loads the checkpoint in the stored
// precision instead of the source's. The directory appears atomically: it is written under a
// temporary name and renamed, so a failure leaves no half-written output. A non-empty output
// directory is refused unless options.overwrite.

import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../io/atomic-write.js";
import { decodeUtf8 } from "../io/decode.js";
import { parseJsonStrict } from "../io/json.js";
import { makeDirs } from "../io/output-paths.js";
import { openCheckpoint, type TensorToWrite, writeSafetensors } from "../io/safetensors.js";
import type { CausalLM } from "./model.js";
import { tensorToF32 } from "./weights.js";

/** Files of a model directory that are not weights and are kept as they are. */
const COPIED =
  /^(generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|chat_template\.jinja|vocab\.json|merges\.txt)$/;

export interface SaveModelOptions {
  /** Source model directory: its non-weight files are copied and its tensor dtypes kept. */
  sourceDir: string;
  /** Overrides the stored dtype of every floating-point tensor. */
  dtype?: "F32" | "BF16" | "F16";
  /** Replace a non-empty outDir (default: refuse it). */
  overwrite?: boolean;
}

/** transformers' names of the stored dtypes (torch.float32, ...). */
const TORCH_DTYPE_NAMES = { F32: "float32", BF16: "bfloat16", F16: "float16" } as const;

/**
 * The source config.json with "dtype" (and "torch_dtype" where the source has that key) set to
 * the dtype that holds most of the stored parameters.
 */
async function configWithDtype(
  sourceDir: string,
  stored: ReadonlyArray<{ dtype: keyof typeof TORCH_DTYPE_NAMES; numel: number }>,
): Promise<string> {
  const path = join(sourceDir, "config.json");
  const config = parseJsonStrict(decodeUtf8(await readFile(path), path), path) as Record<
    string,
    unknown
  >;
  const count = new Map<string, number>();
  for (const t of stored) count.set(t.dtype, (count.get(t.dtype) ?? 0) + t.numel);
  const [dtype] = [...count].sort((a, b) => b[1] - a[1])[0] ?? ["F32"];
  const name = TORCH_DTYPE_NAMES[dtype as keyof typeof TORCH_DTYPE_NAMES];
  config.dtype = name;
  if ("torch_dtype" in config) config.torch_dtype = name;
  return `${JSON.stringify(config, null, 2)}\n`;
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
  if (options.overwrite !== true && existsSync(outDir) && (await readdir(outDir)).length > 0) {
    throw new Error(`${outDir}: exists and is not empty; choose a new output directory`);
  }
  const source = await openCheckpoint(options.sourceDir);
  const sourceDtypes = new Map([...source.entries].map(([name, e]) => [name, e.dtype]));
  await source.close();
  const tmp = join(dirname(outDir), `.${basename(outDir)}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await makeDirs(dirname(outDir));
  await mkdir(tmp);
  try {
    const tensors: TensorToWrite[] = [];
    for (const [name, param] of model.params) {
      const src = sourceDtypes.get(name);
      const dtype = options.dtype ?? (src === "BF16" || src === "F16" ? src : "F32");
      tensors.push({ name, dtype, shape: [...param.shape], data: tensorToF32(param) }); // 16-bit weights widened
    }
    for (const param of model.offHeapParams()) {
      const src = sourceDtypes.get(param.name);
      const dtype = options.dtype ?? (src === "BF16" || src === "F16" ? src : "F32");
      tensors.push({ name: param.name, dtype, shape: [...param.shape], data: param.read() });
    }
    await writeSafetensors(join(tmp, "model.safetensors"), tensors, { format: "pt" });
    const stored = tensors.map((t) => ({ dtype: t.dtype as "F32", numel: t.data.length }));
    await writeFileAtomic(
      join(tmp, "config.json"),
      await configWithDtype(options.sourceDir, stored),
    );
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
