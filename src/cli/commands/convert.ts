// `loraga convert`: turns an adapter trained on an offset base (LoRA-GA / PiSSA / OLoRA init) into a
// plain rank-2r LoRA for the ORIGINAL base model (docs/lora-ga-spec.md §8), from the init adapter
// (A0, B0) and the final one (A1, B1). No model is needed: module shapes come from the adapter files.

import { join } from "node:path";
import { SafetensorsFile } from "../../io/safetensors.js";
import type { LinearInfo } from "../../models/linear.js";
import { ADAPTER_WEIGHTS_NAME, loadAdapter, saveAdapter } from "../../peft/adapter-io.js";
import { convertAdapter } from "../../peft/convert.js";
import { commandOf } from "../command.js";
import { UsageError } from "../errors.js";
import { configFlag } from "../options/engine.js";
import { checkInputDir } from "../options/model.js";
import { checkOutputDir, outFlag, overwriteFlag } from "../options/output.js";
import { type Parsed, required, stringFlag, switchFlag } from "../options/schema.js";
import { guardOutput, removingCreatedDirs } from "../output-guard.js";

/** Linear-layer descriptions recovered from an adapter file's lora_A (r, in) / lora_B (out, r). */
async function linearsOfAdapter(dir: string): Promise<LinearInfo[]> {
  const file = await SafetensorsFile.open(join(dir, ADAPTER_WEIGHTS_NAME));
  try {
    const shapes = new Map<string, { in?: number; out?: number }>();
    for (const [name, entry] of file.entries) {
      const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(name);
      if (m === null || entry.shape.length !== 2) continue; // loadAdapter reports these precisely
      const s = shapes.get(m[1]) ?? {};
      if (m[2] === "A") s.in = entry.shape[1];
      else s.out = entry.shape[0];
      shapes.set(m[1], s);
    }
    return [...shapes].map(([path, s]) => ({
      path,
      inFeatures: s.in ?? 0,
      outFeatures: s.out ?? 0,
      weightName: `${path}.weight`,
      biasName: null,
      fanInFanOut: false,
    }));
  } finally {
    await file.close();
  }
}

const SCHEMA = {
  init: required(
    stringFlag("--init <dir>", "the initial adapter written by `loraga init` (A0, B0)"),
  ),
  final: required(
    stringFlag("--final <dir>", "the trained adapter (A1, B1), for the same offset base"),
  ),
  out: outFlag("<dir>", "where to write the converted adapter"),
  overwrite: overwriteFlag,
  config: configFlag,
  quiet: switchFlag("-q, --quiet", "no output"),
};

type Plan = Parsed<typeof SCHEMA>;

function check(parsed: Plan): Plan {
  const { options: o, name } = parsed;
  checkInputDir(name("init"), o.init);
  checkInputDir(name("final"), o.final);
  checkOutputDir(name("out"), o.out);
  return parsed;
}

async function run({ options: o, name }: Plan): Promise<void> {
  await guardOutput({
    flag: name("out"),
    path: o.out,
    kind: "dir",
    overwrite: o.overwrite,
    inputs: [
      [name("init"), o.init],
      [name("final"), o.final],
    ],
  });
  const initial = await loadAdapter(o.init, await linearsOfAdapter(o.init));
  const trained = await loadAdapter(o.final, await linearsOfAdapter(o.final));
  if (initial.init !== null && initial.init.offset_base === false) {
    throw new UsageError(
      `--init ${o.init}: this adapter's init did not move the base weights; nothing to convert`,
    );
  }
  if (initial.init?.converted === true || trained.init?.converted === true) {
    throw new UsageError("an input adapter is already converted");
  }
  const a = initial.config;
  const b = trained.config;
  if (a.r !== b.r || a.lora_alpha !== b.lora_alpha || a.use_rslora !== b.use_rslora) {
    throw new UsageError(
      `--init and --final disagree: r ${a.r} vs ${b.r}, lora_alpha ${a.lora_alpha} vs ${b.lora_alpha}, ` +
        `use_rslora ${a.use_rslora} vs ${b.use_rslora}`,
    );
  }
  const converted = convertAdapter(trained.config, trained.weights, initial.weights);
  await saveAdapter(o.out, converted.config, converted.weights, {
    init: { ...(initial.init ?? {}), converted: true },
  });
  if (!o.quiet) {
    process.stderr.write(
      `converted ${converted.weights.size} modules to r=${converted.config.r}, lora_alpha=${converted.config.lora_alpha}; wrote ${o.out}\n`,
    );
  }
}

export const registerConvert = commandOf({
  name: "convert",
  description:
    "convert a LoRA-GA/PiSSA/OLoRA-trained adapter to a plain rank-2r LoRA for the original base",
  schema: SCHEMA,
  helpAfter:
    "\nExample:\n  loraga convert --init runs/init-adapter --final runs/final-adapter --out runs/peft-adapter\n",
  check,
  // a run stopped before writing anything leaves no empty --out behind
  run: (plan) => removingCreatedDirs(plan.options.out, () => run(plan)),
});
