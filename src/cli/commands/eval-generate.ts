// `loraga eval` (loss / perplexity over a JSONL file, and GSM8K-style exact match of generated
// answers for prompt/completion rows) and `loraga generate` (continuations of prompts), on a base
// model with an optional adapter. Results go to stdout as JSON (eval) or text (generate).

import { type Command, Option } from "commander";
import { collate, groupIntoBatches } from "../../data/batches.js";
import { loadExamples } from "../../data/dataset.js";
import { readJsonl } from "../../data/jsonl.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import type { CausalLM } from "../../models/model.js";
import { loadPeftModel } from "../../peft/peft-model.js";
import { generate } from "../../train/generate.js";
import { evaluateLoss, gsm8kExactMatch } from "../../train/metrics.js";
import { Rng } from "../../util/random.js";
import {
  addEngineOptions,
  type Engine,
  intFlag,
  numberFlag,
  openEngine,
  openModel,
  openTokenizerIfAny,
} from "../common.js";
import { resolveOptions, UsageError } from "../config-file.js";

function addModelFlags(command: Command): Command {
  return command
    .requiredOption("--model <dir>", "Hugging Face model directory")
    .option("--adapter <dir>", "LoRA adapter to apply")
    .option(
      "--init <dir>",
      "init adapter, for an adapter trained on a LoRA-GA/PiSSA/OLoRA offset base",
    );
}

async function openWithAdapter(
  options: Record<string, unknown>,
  engine: Engine,
): Promise<{ model: CausalLM; tokenizer: Tokenizer | null }> {
  const model = await openModel(options.model as string, engine);
  if (options.adapter !== undefined) {
    await loadPeftModel(
      model,
      options.adapter as string,
      options.init === undefined ? {} : { initAdapterDir: options.init as string },
    );
  } else if (options.init !== undefined) {
    throw new UsageError("--init needs --adapter");
  }
  return { model, tokenizer: await openTokenizerIfAny(options.model as string) };
}

export function registerEval(program: Command): void {
  const command = addModelFlags(
    program
      .command("eval")
      .description("evaluate loss / perplexity (and exact match) on a JSONL file"),
  )
    .requiredOption("--data <file>", "JSONL rows (as for train)")
    .option("--batch-size <n>", "rows per batch", intFlag("--batch-size"), 4)
    .option("--max-length <n>", "truncate rows to this many tokens", intFlag("--max-length"), 512)
    .option(
      "--exact-match",
      "also generate answers for prompt/completion rows and score the final number (GSM8K style)",
      false,
    )
    .option(
      "--max-new-tokens <n>",
      "generation length for --exact-match",
      intFlag("--max-new-tokens"),
      64,
    );
  addEngineOptions(command);
  command.addHelpText(
    "after",
    "\nExample:\n  loraga eval --model ./tiny-llama --adapter runs/lora-ga/adapter-converted --data test.jsonl --exact-match\n",
  );
  command.action(async () => {
    const options = resolveOptions(command);
    const engine = await openEngine(options);
    try {
      const { model, tokenizer } = await openWithAdapter(options, engine);
      const vocabSize =
        (model.config as { vocab_size?: number }).vocab_size ?? Number.MAX_SAFE_INTEGER;
      const examples = await loadExamples(options.data as string, tokenizer, { vocabSize });
      const padTokenId = tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? 0;
      const batches = groupIntoBatches(examples, options.batchSize as number).map((g) =>
        collate(g, { maxLength: options.maxLength as number, padTokenId }),
      );
      const result: Record<string, number> = {
        ...evaluateLoss(model, batches),
        examples: examples.length,
      };
      if (options.exactMatch === true) {
        if (tokenizer === null)
          throw new UsageError("--exact-match needs the model's tokenizer.json");
        result.exact_match = await exactMatch(model, tokenizer, options);
      }
      process.stdout.write(`${JSON.stringify(result)}\n`);
      model.dispose();
    } finally {
      await engine.dispose();
    }
  });
}

/** Fraction of prompt/completion rows whose greedy answer has the reference's final number. */
async function exactMatch(
  model: CausalLM,
  tokenizer: Tokenizer,
  options: Record<string, unknown>,
): Promise<number> {
  const rows: { prompt: string; completion: string }[] = [];
  for await (const { line, value } of readJsonl(options.data as string)) {
    if (typeof value.prompt !== "string" || typeof value.completion !== "string") {
      throw new UsageError(
        `${options.data as string}:${line}: --exact-match needs "prompt" and "completion" strings`,
      );
    }
    rows.push({ prompt: value.prompt, completion: value.completion });
  }
  let correct = 0;
  for (const group of groupIntoBatches(rows, options.batchSize as number)) {
    const outputs = generate(
      model,
      group.map((r) => tokenizer.encode(r.prompt, { addSpecialTokens: true })),
      {
        maxNewTokens: options.maxNewTokens as number,
        eosTokenId: tokenizer.eosTokenId,
        padTokenId: tokenizer.padTokenId ?? 0,
      },
    );
    outputs.forEach((ids, i) => {
      if (gsm8kExactMatch(tokenizer.decode(ids, { skipSpecialTokens: true }), group[i].completion))
        correct++;
    });
  }
  return rows.length === 0 ? Number.NaN : correct / rows.length;
}

export function registerGenerate(program: Command): void {
  const command = addModelFlags(
    program.command("generate").description("generate continuations of prompts"),
  )
    .option("--prompt <text>", "a prompt (repeatable)", (v: string, all: string[] = []) => [
      ...all,
      v,
    ])
    .option("--data <file>", 'JSONL with a "prompt" (or "text") per row')
    .option("--chat", "wrap each prompt as a user message in the chat template", false)
    .option("--max-new-tokens <n>", "tokens to generate", intFlag("--max-new-tokens"), 64)
    .option("--temperature <x>", "0 = greedy", numberFlag("--temperature"), 0)
    .option("--top-p <x>", "nucleus sampling threshold", numberFlag("--top-p"), 1)
    .option("--seed <n>", "sampling seed", intFlag("--seed", 0), 0)
    .addOption(
      new Option("--format <f>", "output format").choices(["text", "jsonl"]).default("text"),
    );
  addEngineOptions(command);
  command.addHelpText(
    "after",
    '\nExample:\n  loraga generate --model ./tiny-llama --adapter runs/lora/adapter --prompt "Tom has 3 apples" --max-new-tokens 32\n',
  );
  command.action(async () => {
    const options = resolveOptions(command);
    const prompts = [...((options.prompt as string[] | undefined) ?? [])];
    if (options.data !== undefined) {
      for await (const { line, value } of readJsonl(options.data as string)) {
        const text = value.prompt ?? value.text;
        if (typeof text !== "string")
          throw new UsageError(
            `${options.data as string}:${line}: expected a "prompt" or "text" string`,
          );
        prompts.push(text);
      }
    }
    if (prompts.length === 0) throw new UsageError("give --prompt TEXT or --data FILE");
    const engine = await openEngine(options);
    try {
      const { model, tokenizer } = await openWithAdapter(options, engine);
      if (tokenizer === null)
        throw new UsageError(`--model ${options.model as string}: generate needs tokenizer.json`);
      const encoded = prompts.map((p) =>
        options.chat === true
          ? tokenizer.encode(
              tokenizer.applyChatTemplate([{ role: "user", content: p }], {
                addGenerationPrompt: true,
              }),
              { addSpecialTokens: false },
            )
          : tokenizer.encode(p, { addSpecialTokens: true }),
      );
      const outputs = generate(model, encoded, {
        maxNewTokens: options.maxNewTokens as number,
        eosTokenId: tokenizer.eosTokenId,
        padTokenId: tokenizer.padTokenId ?? 0,
        temperature: options.temperature as number,
        topP: options.topP as number,
        rng: new Rng(options.seed as number),
      });
      outputs.forEach((ids, i) => {
        const text = tokenizer.decode(ids, { skipSpecialTokens: true });
        process.stdout.write(
          options.format === "jsonl"
            ? `${JSON.stringify({ prompt: prompts[i], completion: text })}\n`
            : `${prompts[i]}${text}\n`,
        );
      });
      model.dispose();
    } finally {
      await engine.dispose();
    }
  });
}
