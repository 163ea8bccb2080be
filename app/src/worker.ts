// The training worker: owns the engine (engine.ts: webgpu, or the wasm kernels on their own
// worker threads when the page is cross-origin isolated, one thread otherwise), the in-memory file
// system with the opened files, and the model of the last run (for generation). Messages:
// protocol.ts. Every failure is reported as one "error" message with the library's text (which
// names the file, line or module; running out of engine memory also names the run, its stage and
// what needs less); the page then starts a fresh worker.

import { readModelConfig } from "../../src/io/hf-config.js";
import { assertSupportedModelType, isEncoderDecoder } from "../../src/models/registry.js";
import { HeapExhaustedError } from "../../src/tensor/heap.js";
import { generate } from "../../src/train/generate.js";
import { DEMO_TEST_FILE, DEMO_TRAIN_FILE, demoJsonl } from "./demo-data.js";
import { Engines } from "./engine.js";
import { existsSync } from "./node/fs.js";
import { installNodeGlobals } from "./node/globals.js";
import { putFile, removeTree } from "./node/vfs.js";
import { previewData } from "./preview.js";
import type { DataSource, FromWorker, ModelSource, Stage, ToWorker } from "./protocol.js";
import { type Loaded, loadRunModel, loadTokenizerIfAny, runMethod } from "./run.js";

/** The demo model's files, served next to the page (app/vite.config.ts copies demo/model). */
const DEMO_MODEL_FILES = [
  "config.json",
  "model.safetensors",
  "tokenizer.json",
  "tokenizer_config.json",
];
const DEMO_MODEL_DIR = "demo-model";

installNodeGlobals();

const post = (message: FromWorker) => self.postMessage(message);

const engines = new Engines();
let loaded: Loaded | null = null;
let stopRequested = false;
let mountedModel: string | null = null;
/** The run and stage reported last, to say where memory ran out. */
let current: { run: string; stage: Stage } | null = null;

const STAGE_NAMES: Record<Stage, string> = {
  load: "loading",
  estimate: "estimating gradients",
  init: "initialising adapters",
  train: "training",
  eval: "evaluating",
  save: "saving",
};

function disposeLoaded(): void {
  loaded?.trainable.dispose();
  loaded?.model.dispose();
  loaded = null;
}

/** Mounts the model's files; returns its directory in the in-memory file system. */
async function mountModel(source: ModelSource): Promise<string> {
  const dir = source.kind === "demo" ? DEMO_MODEL_DIR : source.name;
  if (mountedModel === dir && source.kind === "demo") return dir;
  removeTree(dir);
  if (source.kind === "demo") {
    for (const name of DEMO_MODEL_FILES) {
      // the worker's script lives in assets/; the model's files in demo-model/ beside it
      const response = await fetch(new URL(`../${DEMO_MODEL_DIR}/${name}`, self.location.href));
      if (!response.ok) throw new Error(`${DEMO_MODEL_DIR}/${name}: HTTP ${response.status}`);
      putFile(`${dir}/${name}`, await response.blob());
    }
  } else {
    for (const { path, file } of source.files) putFile(`${dir}/${path}`, file);
    if (!existsSync(`${dir}/config.json`)) {
      throw new Error(`${dir}: no config.json there (expected a Hugging Face model directory)`);
    }
  }
  mountedModel = dir;
  return dir;
}

/** Mounts the data; returns the training and eval files (demo: the held-out split). */
function mountData(source: DataSource): { dataFile: string; evalFile: string } {
  if (source.kind === "demo") {
    const { train, test } = demoJsonl();
    putFile(DEMO_TRAIN_FILE, new Blob([train]));
    putFile(DEMO_TEST_FILE, new Blob([test]));
    return { dataFile: DEMO_TRAIN_FILE, evalFile: DEMO_TEST_FILE };
  }
  putFile(source.file.name, source.file);
  return { dataFile: source.file.name, evalFile: source.file.name };
}

/**
 * Reads the model's config.json; an unsupported model_type is an error naming that file, before
 * any weight or data is read. Returns the vocabulary size and whether rows are input -> target
 * pairs (an encoder-decoder: t5).
 */
async function checkModel(modelDir: string): Promise<{ vocabSize: number; seq2seq: boolean }> {
  const config = await readModelConfig(modelDir);
  try {
    assertSupportedModelType(config.model_type);
  } catch (error) {
    throw new Error(`${modelDir}/config.json: ${(error as Error).message}`);
  }
  if (!("vocab_size" in config)) throw new Error(`${modelDir}/config.json: not a known layout`);
  return { vocabSize: config.vocab_size, seq2seq: isEncoderDecoder(config.model_type) };
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case "inspect": {
      const modelDir = await mountModel(message.model);
      const rows = await checkModel(modelDir);
      const tokenizer = await loadTokenizerIfAny(modelDir);
      const { dataFile } = mountData(message.data);
      const preview = await previewData(dataFile, tokenizer, {
        ...rows,
        maxLength: message.maxLength,
      });
      post({ type: "inspected", preview });
      return;
    }
    case "run": {
      stopRequested = false;
      current = null;
      disposeLoaded();
      const modelDir = await mountModel(message.model);
      await checkModel(modelDir);
      const { dataFile, evalFile } = mountData(message.data);
      const first = message.methods[0];
      post({ type: "stage", run: first, stage: "load", done: 0, total: 1 });
      current = { run: first, stage: "load" };
      const { model, report } = await engines.load(
        {
          choice: message.settings.kernels,
          threads: message.settings.threads,
          heapLimitBytes: message.heapLimitBytes,
        },
        (kernels) => loadRunModel(modelDir, kernels),
      );
      post({ type: "engine", ...report });
      const ctx = {
        kernels: model.kernels,
        modelDir,
        dataFile,
        evalFile,
        settings: message.settings,
        report: (m: FromWorker) => {
          if (m.type === "stage") current = { run: m.run, stage: m.stage };
          post(m);
        },
        shouldStop: () => stopRequested,
      };
      for (const [i, method] of message.methods.entries()) {
        if (stopRequested) break;
        removeTree(`/runs/${method}`);
        const { outcome, loaded: result } = await runMethod(
          ctx,
          method,
          method,
          i === 0 ? model : undefined,
        );
        post({ type: "finished", outcome });
        if (i < message.methods.length - 1) {
          result.trainable.dispose();
          result.model.dispose();
        } else {
          loaded = result;
        }
      }
      post({ type: "done" });
      return;
    }
    case "stop":
      stopRequested = true;
      return;
    case "generate": {
      if (loaded === null) throw new Error("generate: train a model first");
      const tokenizer = loaded.tokenizer;
      if (tokenizer === null) throw new Error("generate: the model folder has no tokenizer.json");
      loaded.trainable.setTraining(false);
      const [reply] = await generate(loaded.model, [tokenizer.encode(message.prompt)], {
        maxNewTokens: message.maxNewTokens,
        eosTokenId: tokenizer.eosTokenId,
      });
      post({
        type: "generated",
        prompt: message.prompt,
        text: tokenizer.decode(reply, { skipSpecialTokens: true }),
      });
      return;
    }
  }
}

/** The page's one message for a failure. */
function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  let cause: unknown = error;
  while (cause instanceof Error && !(cause instanceof HeapExhaustedError)) cause = cause.cause;
  if (!(cause instanceof HeapExhaustedError)) return error.message;
  const where = current === null ? "" : ` (${current.run}: ${STAGE_NAMES[current.stage]})`;
  return (
    `Out of memory${where}: ${error.message}. A smaller --batch-size or --max-length, ` +
    "or a smaller model, needs less."
  );
}

/** Runs one message at a time; "stop" is handled at once (the run polls it between steps). */
let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "stop") {
    stopRequested = true;
    return;
  }
  queue = queue.then(() =>
    handle(message).catch((error: unknown) => {
      post({ type: "error", message: errorText(error) });
    }),
  );
};
