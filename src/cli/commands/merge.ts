// `loraga merge`: folds a LoRA adapter into its base model (W += s B A) and writes a full Hugging
// Face checkpoint. A LoRA-GA / PiSSA / OLoRA adapter trained on the offset base needs its init
// adapter (--init) — or convert it first; a converted or plain adapter merges into the original base.

import type { Command } from "commander";
import { Option } from "commander";
import { saveModel } from "../../models/save.js";
import { loadPeftModel } from "../../peft/peft-model.js";
import { addEngineOptions, openEngine, openModel } from "../common.js";
import { resolveOptions } from "../config-file.js";
import { guardOutput } from "../output-guard.js";

export function registerMerge(program: Command): void {
  const command = program
    .command("merge")
    .description("merge a LoRA adapter into the base model and save a full Hugging Face checkpoint")
    .requiredOption("--model <dir>", "base model directory (the original, un-offset model)")
    .requiredOption(
      "--adapter <dir>",
      "adapter directory (adapter_config.json + adapter_model.safetensors)",
    )
    .requiredOption("--out <dir>", "new model directory to write")
    .option("--overwrite", "replace an existing output", false)
    .option(
      "--init <dir>",
      "init adapter, for an adapter trained on a LoRA-GA/PiSSA/OLoRA offset base",
    )
    .addOption(
      new Option("--dtype <dtype>", "stored dtype (default: as the base)").choices([
        "F32",
        "BF16",
        "F16",
      ]),
    );
  addEngineOptions(command);
  command.addHelpText(
    "after",
    "\nExample:\n  loraga merge --model ./tiny-llama --adapter runs/peft-adapter --out ./tiny-llama-merged\n",
  );
  command.action(async () => {
    const options = resolveOptions(command);
    await guardOutput({
      flag: "--out",
      path: options.out as string,
      kind: "dir",
      overwrite: options.overwrite === true,
      inputs: [
        ["--model", options.model as string],
        ["--adapter", options.adapter as string],
        ["--init", options.init as string | undefined],
      ],
    });
    const engine = await openEngine(options);
    try {
      const model = await openModel(options.model as string, engine);
      const peft = await loadPeftModel(model, options.adapter as string, {
        ...(options.init !== undefined && { initAdapterDir: options.init as string }),
      });
      const count = peft.adapters.size;
      peft.mergeAndUnload();
      await saveModel(model, options.out as string, {
        sourceDir: options.model as string,
        ...(options.dtype !== undefined && { dtype: options.dtype as "F32" }),
        overwrite: options.overwrite === true,
      });
      if (options.quiet !== true)
        process.stderr.write(`merged ${count} modules; wrote ${options.out as string}\n`);
      model.dispose();
    } finally {
      await engine.dispose();
    }
  });
}
