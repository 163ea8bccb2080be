// The training worker: owns the engine (the wasm kernels on their own worker threads when the page
// is cross-origin isolated, one thread otherwise), the in-memory file system with the opened files,
// and the model of the last run (for generation). Messages: protocol.ts. Every failure is reported
// as one "error" message with the library's text (which names the file, line or module); the page
// then starts a fresh worker.

import { readModelConfig } from "../../src/io/hf-config.js";
import { createWasmKernels, type WasmKernels } from "../../src/kernels/wasm/index.js";
import { assertSupportedModelType } from "../../src/models/registry.js";
import { Heap } from "../../src/tensor/heap.js";
import { generate } from "../../src/train/generate.js";
import { DEMO_TEST_FILE, DEMO_TRAIN_FILE, demoJsonl } from "./demo-data.js";
import { existsSync } from "./node/fs.js";
import { installNodeGlobals } from "./node/globals.js";
import { putFile, removeTree } from "./node/vfs.js";
import { previewData } from "./preview.js";
import type { DataSource, FromWorker, ModelSource, ToWorker } from "./protocol.js";
import { type Loaded, loadTokenizerIfAny, runMethod } from "./run.js";

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

let engine: { heap: Heap; kernels: WasmKernels } | null = null;
let loaded: Loaded | null = null;
let stopRequested = false;
let mountedModel: string | null = null;

async function openEngine(threads: number | undefined): Promise<WasmKernels> {
  const isolated = self.crossOriginIsolated === true;
  // without cross-origin isolation there is no shared memory for worker threads: one thread
  const wanted = isolated ? threads : 1;
  if (engine !== null && (wanted === undefined || engine.kernels.threads === wanted))
    return engine.kernels;
  await disposeAll();
  const heap = new Heap();
  const kernels = await createWasmKernels(heap, wanted === undefined ? {} : { threads: wanted });
  engine = { heap, kernels };
  post({ type: "engine", threads: kernels.threads, isolated, relaxedSimd: kernels.relaxedSimd });
  return kernels;
}

function disposeLoaded(): void {
  loaded?.trainable.dispose();
  loaded?.model.dispose();
  loaded = null;
}

async function disposeAll(): Promise<void> {
  disposeLoaded();
  await engine?.kernels.dispose();
  engine = null;
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
 * any weight or data is read. Returns the vocabulary size.
 */
async function checkModel(modelDir: string): Promise<number> {
  const config = await readModelConfig(modelDir);
  try {
    assertSupportedModelType(config.model_type);
  } catch (error) {
    throw new Error(`${modelDir}/config.json: ${(error as Error).message}`);
  }
  if (!("vocab_size" in config)) throw new Error(`${modelDir}/config.json: not a known layout`);
  return config.vocab_size;
}

async function handle(message: ToWorker): Promise<void> {
  switch (message.type) {
    case "inspect": {
      const modelDir = await mountModel(message.model);
      const vocabSize = await checkModel(modelDir);
      const tokenizer = await loadTokenizerIfAny(modelDir);
      const { dataFile } = mountData(message.data);
      const preview = await previewData(dataFile, tokenizer, {
        vocabSize,
        maxLength: message.maxLength,
      });
      post({ type: "inspected", preview });
      return;
    }
    case "run": {
      stopRequested = false;
      disposeLoaded();
      const kernels = await openEngine(message.settings.threads);
      const modelDir = await mountModel(message.model);
      await checkModel(modelDir);
      const { dataFile, evalFile } = mountData(message.data);
      const ctx = {
        kernels,
        modelDir,
        dataFile,
        evalFile,
        settings: message.settings,
        report: post,
        shouldStop: () => stopRequested,
      };
      for (const [i, method] of message.methods.entries()) {
        if (stopRequested) break;
        removeTree(`/runs/${method}`);
        const { outcome, loaded: result } = await runMethod(ctx, method, method);
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
      post({ type: "error", message: error instanceof Error ? error.message : String(error) });
    }),
  );
};
