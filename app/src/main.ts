// The page: choose a model and data, see the data preview, set the run (the CLI's flags), run
// estimation + init + training in a Web Worker (worker.ts) with live progress and loss chart,
// stop it, generate from the result, and save the adapters and logs. Everything stays in this
// tab: files are read locally, nothing is sent anywhere or stored beyond what the person saves.

import type {
  DataSource,
  EngineReport,
  FromWorker,
  ModelSource,
  RunOutcome,
  Stage,
  ToWorker,
} from "./protocol.js";
import { parseSettings, type RunSettings } from "./settings.js";
import { byId, h } from "./ui/dom.js";
import { pageSections } from "./ui/layout.js";
import { LossChart } from "./ui/loss-chart.js";
import { renderPreview } from "./ui/preview-view.js";
import { resultsTable } from "./ui/results-view.js";
import { compareMethod, formTexts } from "./ui/settings-form.js";
import { directoryPicker, modelFolderFromInput, pickModelFolder } from "./ui/sources.js";

const STAGE_TEXT: Record<Stage, string> = {
  load: "loading model and data",
  estimate: "estimating gradients",
  init: "initialising adapters",
  train: "training",
  eval: "evaluating",
  save: "saving adapters",
};

let model: ModelSource = { kind: "demo" };
let data: DataSource = { kind: "demo" };
let worker: Worker;
let running = false;
let trainingNow = false;
let settings: RunSettings | null = null;
const outcomes: RunOutcome[] = [];

/**
 * A test hook: `?heap-limit-mib=N` in the page's URL caps the engine heap at N MiB, so that a
 * test can make a real run run out of memory.
 */
const HEAP_LIMIT_MIB = Number(new URLSearchParams(self.location.search).get("heap-limit-mib"));

function send(message: ToWorker): void {
  worker.postMessage(message);
}

function startWorker(): void {
  worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
  worker.onmessage = (event: MessageEvent<FromWorker>) => onMessage(event.data);
  worker.onerror = (event) => fail(event.message || "the worker stopped");
}

function restartWorker(): void {
  worker.terminate();
  startWorker();
}

function showError(message: string): void {
  byId("error").replaceChildren(
    h("p", {}, message),
    h("button", { type: "button", id: "dismiss" }, "Dismiss"),
  );
  byId("dismiss").addEventListener("click", () => byId("error").replaceChildren());
}

/** A failed step: one message, a fresh worker, the page usable again. */
function fail(message: string): void {
  showError(message);
  restartWorker();
  setRunning(false);
  byId("stage").textContent = "stopped by an error";
}

function setRunning(on: boolean): void {
  running = on;
  if (!on) trainingNow = false;
  byId<HTMLButtonElement>("run").disabled = on;
  byId<HTMLButtonElement>("stop").disabled = !on;
  byId<HTMLButtonElement>("generate").disabled = on || outcomes.length === 0;
}

let chart: LossChart;

function onMessage(message: FromWorker): void {
  switch (message.type) {
    case "engine":
      byId("notice").textContent = engineNotice(message);
      return;
    case "inspected":
      byId("preview").replaceChildren(renderPreview(message.preview));
      return;
    case "stage": {
      trainingNow = message.stage === "train";
      byId("stage").textContent =
        `${message.run}: ${STAGE_TEXT[message.stage]}${message.total > 1 ? ` (${message.done}/${message.total})` : ""}`;
      const bar = byId<HTMLProgressElement>("progress");
      bar.max = message.total;
      bar.value = message.done;
      return;
    }
    case "step": {
      chart.add(message.run, message.step, message.loss);
      const total = settings?.steps ?? message.step;
      byId("stage").textContent =
        `${message.run}: training, step ${message.step}/${total}, loss ${message.loss.toFixed(4)}`;
      byId<HTMLProgressElement>("progress").value = message.step;
      byId("speed").textContent = `${Math.round(message.tokensPerSecond)} tokens/s`;
      return;
    }
    case "finished":
      outcomes.push(message.outcome);
      renderResults();
      return;
    case "done":
      setRunning(false);
      byId("stage").textContent = outcomes.some((o) => o.interrupted) ? "stopped" : "done";
      return;
    case "generated":
      byId("generated").textContent = message.text;
      byId<HTMLButtonElement>("generate").disabled = false;
      return;
    case "error":
      fail(message.message);
      return;
  }
}

const NOT_ISOLATED =
  "This page is not cross-origin isolated (its server sends no COOP/COEP headers), so the WebAssembly engine runs on one thread: slower, same results. See the README to host it with the headers.";

/** Which engine runs, and why not WebGPU when auto did not pick it. */
function engineNotice(report: EngineReport): string {
  if (report.engine === "webgpu") return `Engine: WebGPU on the adapter "${report.adapter}".`;
  const wasm = report.isolated
    ? `Engine: WebAssembly SIMD${report.relaxedSimd ? " + relaxed FMA" : ""} on ${report.threads} threads.`
    : NOT_ISOLATED;
  return report.fallback === null ? wasm : `WebGPU not used: ${report.fallback}. ${wasm}`;
}

function renderResults(): void {
  byId("results").replaceChildren(resultsTable(outcomes, showError));
}

function readSettings(): RunSettings | null {
  try {
    return parseSettings(formTexts(byId<HTMLFormElement>("settings")));
  } catch (error) {
    showError((error as Error).message);
    return null;
  }
}

function inspect(): void {
  const s = readSettings();
  byId("preview").replaceChildren(h("p", {}, "reading the data…"));
  send({ type: "inspect", model, data, maxLength: s?.maxLength ?? 512 });
}

function start(): void {
  if (running) return;
  byId("error").replaceChildren();
  settings = readSettings();
  if (settings === null) return;
  const second = compareMethod(byId<HTMLFormElement>("settings"));
  // the second (comparison) run goes first, so that the main run stays loaded for generation
  const methods =
    second === null || second === settings.method ? [settings.method] : [second, settings.method];
  outcomes.length = 0;
  chart.clear();
  byId("results").replaceChildren();
  byId("generated").textContent = "";
  byId<HTMLProgressElement>("progress").max = settings.steps;
  byId("stage").textContent = "starting…";
  setRunning(true);
  send({
    type: "run",
    model,
    data,
    settings,
    methods,
    ...(HEAP_LIMIT_MIB > 0 && { heapLimitBytes: HEAP_LIMIT_MIB * 2 ** 20 }),
  });
}

function stop(): void {
  if (!running) return;
  if (trainingNow) {
    send({ type: "stop" }); // ends after the current step; the adapters so far are saved
    byId("stage").textContent = "stopping after this step…";
  } else {
    restartWorker(); // nothing trained yet: drop the run
    setRunning(false);
    byId("stage").textContent = "stopped";
  }
}

function wire(): void {
  byId("run").addEventListener("click", start);
  byId("stop").addEventListener("click", stop);
  byId("model-demo").addEventListener("click", () => {
    model = { kind: "demo" };
    byId("model-status").textContent = "demo model (word tokenizer, ~1.9M parameters)";
    inspect();
  });
  const picker = directoryPicker();
  if (picker !== null) {
    byId("model-pick").addEventListener("click", async () => {
      try {
        model = await pickModelFolder(picker);
        byId("model-status").textContent = `${model.name}: ${model.files.length} files`;
        inspect();
      } catch (error) {
        if ((error as Error).name !== "AbortError") showError((error as Error).message);
      }
    });
  }
  byId<HTMLInputElement>("model-input").addEventListener("change", (event) => {
    const files = (event.target as HTMLInputElement).files;
    const picked = files === null ? null : modelFolderFromInput(files);
    if (picked === null) return;
    model = picked;
    byId("model-status").textContent = `${picked.name}: ${picked.files.length} files`;
    inspect();
  });
  byId("data-demo").addEventListener("click", () => {
    data = { kind: "demo" };
    inspect();
  });
  byId<HTMLInputElement>("data-input").addEventListener("change", (event) => {
    const file = (event.target as HTMLInputElement).files?.[0];
    if (file === undefined) return;
    data = { kind: "file", file };
    inspect();
  });
  byId("setting-maxLength").addEventListener("change", inspect);
  byId("generate").addEventListener("click", () => {
    const maxNewTokens = Number(byId<HTMLInputElement>("max-new").value);
    if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 1) {
      showError(
        `tokens to generate must be an integer >= 1, got "${byId<HTMLInputElement>("max-new").value}"`,
      );
      return;
    }
    byId<HTMLButtonElement>("generate").disabled = true;
    byId("generated").textContent = "generating…";
    send({ type: "generate", prompt: byId<HTMLTextAreaElement>("prompt").value, maxNewTokens });
  });
}

byId("app").append(...pageSections(directoryPicker() !== null));
chart = new LossChart(byId("chart"), () => settings?.steps ?? 1);
startWorker();
wire();
inspect();
if (!self.crossOriginIsolated) byId("notice").textContent = NOT_ISOLATED;
