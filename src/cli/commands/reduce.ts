// `loraga reduce PART...`: combines the partial sums that `loraga estimate --shard i/N` wrote, all N
// of them, into the gradient cache a single `loraga estimate` over every batch writes (same tensors
// and metadata; peft/gradient-shards.ts says how, and what must agree between the parts).

import { saveGradients } from "../../peft/gradient-cache.js";
import { reduceShards } from "../../peft/gradient-shards.js";
import { commandOf } from "../command.js";
import { configFlag } from "../options/engine.js";
import { checkInputFile } from "../options/model.js";
import { checkOutputFile, outFlag, overwriteFlag } from "../options/output.js";
import { type Parsed, switchFlag } from "../options/schema.js";
import { guardOutput } from "../output-guard.js";

const SCHEMA = {
  out: outFlag("<file>", "gradient cache to write (.safetensors)"),
  overwrite: overwriteFlag,
  config: configFlag,
  quiet: switchFlag("-q, --quiet", "print nothing but errors"),
};

interface Plan {
  readonly options: Parsed<typeof SCHEMA>["options"];
  readonly parts: readonly string[];
  /** --out as messages name it (from the flag or --config). */
  readonly outName: string;
}

function check(parsed: Parsed<typeof SCHEMA>, parts: readonly string[]): Plan {
  for (const part of parts) checkInputFile("part", part);
  checkOutputFile(parsed.name("out"), parsed.options.out);
  return { options: parsed.options, parts, outName: parsed.name("out") };
}

async function run({ options: o, parts, outName }: Plan): Promise<void> {
  await guardOutput({
    flag: outName,
    path: o.out,
    kind: "file",
    overwrite: o.overwrite,
    inputs: parts.map((p) => ["part", p] as const),
  });
  const reduced = await reduceShards(parts);
  await saveGradients(o.out, reduced.grads, {
    batches: String(reduced.batches),
    mean_loss: String(reduced.meanLoss),
  });
  if (!o.quiet) {
    process.stderr.write(
      `wrote ${reduced.grads.size} gradients (${reduced.batches} batches, ${reduced.tokens} tokens, from ${reduced.shards} shards; ` +
        `mean loss ${reduced.meanLoss.toFixed(4)}) to ${o.out}\n`,
    );
  }
}

export const registerReduce = commandOf({
  name: "reduce",
  description:
    "combine the partial sums of `loraga estimate --shard i/N` into one gradient cache (LoRA-GA step 1)",
  schema: SCHEMA,
  argument: {
    syntax: "<parts...>",
    help: "the N partial files of one sharded estimation, in any order",
  },
  helpAfter:
    "\nExample (4 shards as 4 processes on one machine):\n" +
    "  for i in 0 1 2 3; do\n" +
    "    loraga estimate --model ./tiny-llama --data train.jsonl --target q_proj,v_proj \\\n" +
    "      --batches 8 --shard $i/4 --out part$i.safetensors &\n" +
    "  done; wait\n" +
    "  loraga reduce part*.safetensors --out grads.safetensors\n",
  check,
  run,
});
