// Messages between the page (main.ts) and the training worker (worker.ts). Files travel as File /
// Blob objects (structured clone shares them, no copy); settings are parsed on the page.

import type { Method, RunSettings } from "./settings.js";

/** The model to fine-tune: the embedded demo model (served with the page) or opened files. */
export type ModelSource =
  | { kind: "demo" }
  | { kind: "files"; name: string; files: readonly { path: string; file: File }[] };

/** The training data: the demo task (generated in the worker) or an opened JSONL file. */
export type DataSource = { kind: "demo" } | { kind: "file"; file: File };

export type ToWorker =
  | { type: "inspect"; model: ModelSource; data: DataSource; maxLength: number }
  | {
      type: "run";
      model: ModelSource;
      data: DataSource;
      settings: RunSettings;
      /** The engine heap's limit in bytes (a test hook: main.ts reads it from the page's URL). */
      heapLimitBytes?: number;
      /** Runs one after another on the same data; the last one stays loaded for generation. */
      methods: readonly Method[];
    }
  | { type: "stop" }
  | { type: "generate"; prompt: string; maxNewTokens: number };

/** One preview row: its text in spans, learned (counted in the loss) or not. */
export interface PreviewRow {
  line: number;
  spans: { text: string; learned: boolean }[];
  tokens: number;
  learnedTokens: number;
}

export interface Preview {
  file: string;
  rows: number;
  tokens: number;
  learnedTokens: number;
  /** The first rows, for display. */
  shown: PreviewRow[];
  /** "FILE:LINE: why" for every row that cannot be used (the first ones). */
  errors: string[];
  /** Rows with no learned token within --max-length (dropped by training). */
  dropped: number;
}

export type Stage = "load" | "estimate" | "init" | "train" | "eval" | "save";

export interface SavedFile {
  /** Path inside the run: "adapter-converted/adapter_model.safetensors", "train.jsonl". */
  path: string;
  blob: Blob;
}

export interface RunOutcome {
  label: string;
  steps: number;
  losses: number[];
  interrupted: boolean;
  /** Mean token loss on the eval rows (demo: the held-out split; a file: its first rows). */
  evalLoss: number;
  evalData: string;
  files: SavedFile[];
}

/** The engine a run uses (engine.ts). */
export interface EngineReport {
  engine: "webgpu" | "wasm";
  threads: number;
  isolated: boolean;
  relaxedSimd: boolean;
  /** The WebGPU adapter's name (webgpu only). */
  adapter: string | null;
  /** Why --kernels auto did not pick webgpu (null: it did, or wasm was chosen). */
  fallback: string | null;
}

export type FromWorker =
  | ({ type: "engine" } & EngineReport)
  | { type: "inspected"; preview: Preview }
  | { type: "stage"; run: string; stage: Stage; done: number; total: number }
  | { type: "step"; run: string; step: number; loss: number; tokensPerSecond: number }
  | { type: "finished"; outcome: RunOutcome }
  | { type: "done" }
  | { type: "generated"; prompt: string; text: string }
  | { type: "error"; message: string };
