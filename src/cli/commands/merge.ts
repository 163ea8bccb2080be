// `loraga merge`: folds a LoRA adapter into its base model (W += s B A) and writes a full Hugging
// Face checkpoint. A LoRA-GA / PiSSA / OLoRA adapter trained on the offset base needs its init
// adapter (--init) — or convert it first; a converted or plain adapter merges into the original base.

import { saveModel } from "../../models/save.js";
import { loadPeftModel } from "../../peft/peft-model.js";
import { commandOf } from "../command.js";
import { ENGINE_FLAGS, openEngine } from "../options/engine.js";
import { checkInputDir, checkModelDir, modelFlag, openModel } from "../options/model.js";
import { checkOutputDir, outFlag, overwriteFlag } from "../options/output.js";
import { choiceFlag, type Parsed, required, stringFlag } from "../options/schema.js";
import { guardOutput, removingCreatedDirs } from "../output-guard.js";

const SCHEMA = {
  model: modelFlag("base model directory (the original, un-offset model)"),
  adapter: required(
    stringFlag(
      "--adapter <dir>",
      "adapter directory (adapter_config.json + adapter_model.safetensors)",
    ),
  ),
  out: outFlag("<dir>", "new model directory to write"),
  overwrite: overwriteFlag,
  init: stringFlag(
    "--init <dir>",
    "init adapter, for an adapter trained on a LoRA-GA/PiSSA/OLoRA offset base",
  ),
  dtype: choiceFlag("--dtype <dtype>", "stored dtype (default: as the base)", [
    "F32",
    "BF16",
    "F16",
  ]),
  ...ENGINE_FLAGS,
};

type Plan = Parsed<typeof SCHEMA>;

function check(parsed: Plan): Plan {
  const { options: o, name } = parsed;
  checkModelDir(name("model"), o.model);
  checkInputDir(name("adapter"), o.adapter);
  if (o.init !== undefined) checkInputDir(name("init"), o.init);
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
      [name("model"), o.model],
      [name("adapter"), o.adapter],
      [name("init"), o.init],
    ],
  });
  const engine = await openEngine(o);
  try {
    const model = await openModel(o.model, engine);
    const peft = await loadPeftModel(model, o.adapter, {
      ...(o.init !== undefined && { initAdapterDir: o.init }),
    });
    const count = peft.adapters.size;
    peft.mergeAndUnload();
    await saveModel(model, o.out, {
      sourceDir: o.model,
      ...(o.dtype !== undefined && { dtype: o.dtype }),
      overwrite: o.overwrite,
    });
    if (!o.quiet) process.stderr.write(`merged ${count} modules; wrote ${o.out}\n`);
    model.dispose();
  } finally {
    await engine.dispose();
  }
}

export const registerMerge = commandOf({
  name: "merge",
  description: "merge a LoRA adapter into the base model and save a full Hugging Face checkpoint",
  schema: SCHEMA,
  helpAfter:
    "\nExample:\n  loraga merge --model ./tiny-llama --adapter runs/peft-adapter --out ./tiny-llama-merged\n",
  check,
  // a run stopped before writing anything leaves no empty --out behind
  run: (plan) => removingCreatedDirs(plan.options.out, () => run(plan)),
});
