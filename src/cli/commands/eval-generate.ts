// `loraga eval` (loss / perplexity over a JSONL file, accuracy by label words for classification
// rows (workflow/label-words.ts), and GSM8K-style exact match of generated answers for
// prompt/completion rows) and `loraga generate` (continuations of prompts), on a base model with an
// optional adapter. Results go to stdout as JSON (eval) or text (generate).

import { groupIntoBatches } from "../../data/batches.js";
import { loadExamples } from "../../data/dataset.js";
import { readJsonl } from "../../data/jsonl.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import type { CausalLM, MemoryOptions } from "../../models/model.js";
import { loadPeftModel } from "../../peft/peft-model.js";
import { generate } from "../../train/generate.js";
import { evaluateLoss, gsm8kExactMatch } from "../../train/metrics.js";
import { Rng } from "../../util/random.js";
import { commandOf } from "../command.js";
import { UsageError } from "../errors.js";
import {
  batchesOf,
  batchSizeFlag,
  dataFlag,
  exampleOptionsFor,
  maxLengthFlag,
  padTokenIdOf,
} from "../options/data.js";
import { ENGINE_FLAGS, type Engine, openEngine } from "../options/engine.js";
import {
  ADAPTER_FLAGS,
  attentionFlag,
  checkInputDir,
  checkInputFile,
  checkModelDir,
  modelFlag,
  openModel,
  openTokenizerIfAny,
} from "../options/model.js";
import {
  choiceFlag,
  intFlag,
  listFlag,
  numberFlag,
  type Parsed,
  repeatFlag,
  required,
  splitList,
  switchFlag,
  withDefault,
} from "../options/schema.js";
import { labelSetOf, labelWordAccuracy } from "../workflow/label-words.js";

const MODEL_FLAGS = { model: modelFlag(), ...ADAPTER_FLAGS };

/** The model, its adapter and --init checked: directories that exist, --init only with --adapter. */
function checkModelAndAdapter({ options: o, name }: Parsed<typeof MODEL_FLAGS>): void {
  checkModelDir(name("model"), o.model);
  if (o.adapter !== undefined) checkInputDir(name("adapter"), o.adapter);
  if (o.init !== undefined) {
    if (o.adapter === undefined) throw new UsageError("--init needs --adapter");
    checkInputDir(name("init"), o.init);
  }
}

async function openWithAdapter(
  o: { model: string; adapter: string | undefined; init: string | undefined },
  engine: Engine,
  memory: MemoryOptions = {},
): Promise<{ model: CausalLM; tokenizer: Tokenizer | null }> {
  const model = await openModel(o.model, engine, {}, memory);
  if (o.adapter !== undefined) {
    await loadPeftModel(model, o.adapter, o.init === undefined ? {} : { initAdapterDir: o.init });
  }
  return { model, tokenizer: await openTokenizerIfAny(o.model) };
}

const EVAL_SCHEMA = {
  ...MODEL_FLAGS,
  data: required(dataFlag("JSONL rows (as for train)")),
  batchSize: batchSizeFlag("rows per batch", 4),
  attention: attentionFlag,
  maxLength: maxLengthFlag,
  accuracy: switchFlag(
    "--accuracy",
    "also classify each row by label words and report the accuracy (the labels: --labels, else the distinct targets / completions of --data)",
  ),
  labels: listFlag(
    "--labels <words>",
    "the label words, comma-separated, e.g. positive,negative (implies --accuracy; needs tokenizer.json)",
  ),
  exactMatch: switchFlag(
    "--exact-match",
    "also generate answers for prompt/completion rows and score the final number (GSM8K style)",
  ),
  maxNewTokens: withDefault(
    intFlag("--max-new-tokens <n>", "generation length for --exact-match"),
    64,
  ),
  ...ENGINE_FLAGS,
};

type EvalPlan = Parsed<typeof EVAL_SCHEMA>;

function checkEval(parsed: EvalPlan): EvalPlan {
  const { options: o, name } = parsed;
  if (o.labels !== undefined && splitList(o.labels).length < 2)
    throw new UsageError(`${name("labels")} needs at least two label words, got "${o.labels}"`);
  checkModelAndAdapter(parsed);
  checkInputFile(name("data"), o.data);
  return parsed;
}

async function runEval({ options: o, name }: EvalPlan): Promise<void> {
  const engine = await openEngine(o);
  try {
    const { model, tokenizer } = await openWithAdapter(o, engine, { attention: o.attention });
    const examples = await loadExamples(o.data, tokenizer, exampleOptionsFor(model, false));
    const shape = { batchSize: o.batchSize, maxLength: o.maxLength };
    const padTokenId = padTokenIdOf(tokenizer);
    const batches = batchesOf(examples, shape, padTokenId);
    const result: Record<string, number> = {
      ...(await evaluateLoss(model, batches)),
      examples: examples.length,
    };
    if (o.accuracy || o.labels !== undefined) {
      const words = o.labels === undefined ? undefined : splitList(o.labels);
      const labels = labelSetOf(examples, words, tokenizer, name("labels"));
      result.accuracy = await labelWordAccuracy(model, examples, labels, { ...shape, padTokenId });
    }
    if (o.exactMatch) {
      if (tokenizer === null)
        throw new UsageError("--exact-match needs the model's tokenizer.json");
      result.exact_match = await exactMatch(model, tokenizer, o);
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
    model.dispose();
  } finally {
    await engine.dispose();
  }
}

/** Fraction of prompt/completion rows whose greedy answer has the reference's final number. */
async function exactMatch(
  model: CausalLM,
  tokenizer: Tokenizer,
  o: { data: string; batchSize: number; maxNewTokens: number },
): Promise<number> {
  const rows: { prompt: string; completion: string }[] = [];
  for await (const { line, value } of readJsonl(o.data)) {
    if (typeof value.prompt !== "string" || typeof value.completion !== "string") {
      throw new UsageError(
        `${o.data}:${line}: --exact-match needs "prompt" and "completion" strings`,
      );
    }
    rows.push({ prompt: value.prompt, completion: value.completion });
  }
  let correct = 0;
  for (const group of groupIntoBatches(rows, o.batchSize)) {
    const outputs = await generate(
      model,
      group.map((r) => tokenizer.encode(r.prompt, { addSpecialTokens: true })),
      {
        maxNewTokens: o.maxNewTokens,
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

export const registerEval = commandOf({
  name: "eval",
  description: "evaluate loss / perplexity (and label-word accuracy, exact match) on a JSONL file",
  schema: EVAL_SCHEMA,
  helpAfter:
    "\nExamples:\n  loraga eval --model ./tiny-llama --adapter runs/lora-ga/adapter-converted --data test.jsonl --exact-match\n" +
    "  loraga eval --model ./t5-base --adapter runs/sst2/adapter-converted --data sst2-dev.jsonl --labels positive,negative\n" +
    '    (rows {"input": "sst2 sentence: ...", "target": "positive"}: each row is scored with every label\n' +
    "    word as its target, the most likely one is the prediction; JSON gets an accuracy field)\n",
  check: checkEval,
  run: runEval,
});

const GENERATE_SCHEMA = {
  ...MODEL_FLAGS,
  prompt: repeatFlag("--prompt <text>", "a prompt (repeatable)"),
  data: dataFlag('JSONL with a "prompt" (or "text") per row'),
  chat: switchFlag("--chat", "wrap each prompt as a user message in the chat template"),
  maxNewTokens: withDefault(intFlag("--max-new-tokens <n>", "tokens to generate"), 64),
  temperature: withDefault(numberFlag("--temperature <x>", "0 = greedy", { min: 0 }), 0),
  topP: withDefault(
    numberFlag("--top-p <x>", "nucleus sampling threshold", { min: 0, minOpen: true, max: 1 }),
    1,
  ),
  seed: withDefault(intFlag("--seed <n>", "sampling seed", 0), 0),
  format: withDefault(choiceFlag("--format <f>", "output format", ["text", "jsonl"]), "text"),
  ...ENGINE_FLAGS,
};

type GeneratePlan = Parsed<typeof GENERATE_SCHEMA>;

function checkGenerate(parsed: GeneratePlan): GeneratePlan {
  const { options: o, name } = parsed;
  if (o.prompt.length === 0 && o.data === undefined)
    throw new UsageError("give --prompt TEXT or --data FILE");
  checkModelAndAdapter(parsed);
  if (o.data !== undefined) checkInputFile(name("data"), o.data);
  return parsed;
}

async function runGenerate({ options: o }: GeneratePlan): Promise<void> {
  const prompts = [...o.prompt];
  if (o.data !== undefined) {
    for await (const { line, value } of readJsonl(o.data)) {
      const text = value.prompt ?? value.text;
      if (typeof text !== "string")
        throw new UsageError(`${o.data}:${line}: expected a "prompt" or "text" string`);
      prompts.push(text);
    }
  }
  if (prompts.length === 0) throw new UsageError(`${o.data}: no prompts`);
  const engine = await openEngine(o);
  try {
    const { model, tokenizer } = await openWithAdapter(o, engine);
    if (tokenizer === null)
      throw new UsageError(`--model ${o.model}: generate needs tokenizer.json`);
    const encoded = prompts.map((p) =>
      o.chat
        ? tokenizer.encode(
            tokenizer.applyChatTemplate([{ role: "user", content: p }], {
              addGenerationPrompt: true,
            }),
            { addSpecialTokens: false },
          )
        : tokenizer.encode(p, { addSpecialTokens: true }),
    );
    const outputs = await generate(model, encoded, {
      maxNewTokens: o.maxNewTokens,
      eosTokenId: tokenizer.eosTokenId,
      padTokenId: tokenizer.padTokenId ?? 0,
      temperature: o.temperature,
      topP: o.topP,
      rng: new Rng(o.seed),
    });
    outputs.forEach((ids, i) => {
      const text = tokenizer.decode(ids, { skipSpecialTokens: true });
      process.stdout.write(
        o.format === "jsonl"
          ? `${JSON.stringify({ prompt: prompts[i], completion: text })}\n`
          : `${prompts[i]}${text}\n`,
      );
    });
    model.dispose();
  } finally {
    await engine.dispose();
  }
}

export const registerGenerate = commandOf({
  name: "generate",
  description: "generate continuations of prompts",
  schema: GENERATE_SCHEMA,
  helpAfter:
    '\nExample:\n  loraga generate --model ./tiny-llama --adapter runs/lora/adapter --prompt "Tom has 3 apples" --max-new-tokens 32\n',
  check: checkGenerate,
  run: runGenerate,
});
