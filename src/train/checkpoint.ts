// Training checkpoints: everything needed to continue a run EXACTLY, written atomically.
//
// Layout of <root>/checkpoint-<step>/ (step = completed optimiser steps):
//   trainer_state.json      {format, version, step, optimizer {kind, step}, data (BatchSource
//                            state), rng (Rng.state() of the dropout generator or null), trainer
//                            (early-stopping bookkeeping, last loss), run (options that must not
//                            change on resume), notes (optional free-form record of the caller)}
//   optimizer.safetensors   optimiser state tensors by name (optimizer.ts), F32
//   adapter/                LoRA: a PEFT adapter directory (peft/adapter-io.ts saveAdapter), or
//   model.safetensors       full fine-tuning: every trained parameter by its HF name, F32
// Atomicity: the checkpoint is assembled in a hidden temp directory next to it
// (.checkpoint-<step>.<pid>.<random>.tmp), every file fsync'ed, then the directory is renamed into
// place (one rename on the same file system), so checkpoint-<step>/ is either absent or complete.
// A temp directory left by a killed process is ignored (and removed by the next save).
// Untrusted input: trainer_state.json is size-bounded and validated; tensors are checked by name
// and size against the live trainable parameters by the caller (optimizer.loadState, trainer).

import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../io/atomic-write.js";
import { parseJsonStrict } from "../io/json.js";
import { makeDirs } from "../io/output-paths.js";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "../io/safetensors.js";
import type { LinearInfo } from "../models/linear.js";
import { type AdapterWeights, loadAdapter, saveAdapter } from "../peft/adapter-io.js";
import type { LoraConfig } from "../peft/config.js";
import type { DataState } from "./data-order.js";
import type { OptimizerState } from "./optimizer.js";
import { isAlive } from "./process-alive.js";

const CHECKPOINT_FORMAT = "loraga-train-checkpoint";
const CHECKPOINT_VERSION = 1;
const STATE_NAME = "trainer_state.json";
const OPTIMIZER_NAME = "optimizer.safetensors";
const FULL_WEIGHTS_NAME = "model.safetensors";
const ADAPTER_DIR = "adapter";
const MAX_STATE_BYTES = 256 * 2 ** 20;
const CHECKPOINT_RE = /^checkpoint-([0-9]+)$/;

/** The trainer's own bookkeeping that must survive a restart. */
interface TrainerBookkeeping {
  bestEvalLoss: number | null;
  evalsWithoutImprovement: number;
  /** Loss of the last completed step (null: none yet, or a checkpoint written before this field). */
  lastLoss: number | null;
}

export interface CheckpointContent {
  step: number;
  optimizer: OptimizerState;
  data: DataState;
  rng: number[] | null;
  trainer: TrainerBookkeeping;
  /** Options that must be the same on resume (compared key by key). */
  run: Record<string, unknown>;
  /** The caller's free-form record, saved and returned as is (e.g. init timings for run.json). */
  notes?: Record<string, unknown>;
  weights: TrainedWeights;
}

/** Trained weights: LoRA (adapter config + A/B per module) or full (HF name -> values). */
export type TrainedWeights =
  | { kind: "lora"; config: LoraConfig; adapters: Map<string, AdapterWeights> }
  | { kind: "full"; params: Map<string, { shape: number[]; data: Float32Array }> };

function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r").catch(() => null);
  if (handle === null) return;
  try {
    await handle.sync();
  } catch {
    // some platforms cannot fsync directories
  } finally {
    await handle.close();
  }
}

/** Writes <root>/checkpoint-<step>/ atomically; returns its path. */
export async function saveCheckpoint(root: string, content: CheckpointContent): Promise<string> {
  await makeDirs(root);
  const final = join(root, checkpointName(content.step));
  const temp = join(
    root,
    `.${checkpointName(content.step)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`,
  );
  await mkdir(temp);
  try {
    const opt: TensorToWrite[] = [...content.optimizer.tensors].map(([name, data]) => ({
      name,
      dtype: "F32",
      shape: [data.length],
      data,
    }));
    await writeSafetensors(join(temp, OPTIMIZER_NAME), opt, {
      format: "pt",
      kind: content.optimizer.kind,
      step: String(content.optimizer.step),
    });
    if (content.weights.kind === "lora") {
      await saveAdapter(join(temp, ADAPTER_DIR), content.weights.config, content.weights.adapters);
      await fsyncPath(join(temp, ADAPTER_DIR));
    } else {
      const tensors: TensorToWrite[] = [...content.weights.params].map(([name, t]) => ({
        name,
        dtype: "F32",
        shape: t.shape,
        data: t.data,
      }));
      await writeSafetensors(join(temp, FULL_WEIGHTS_NAME), tensors, { format: "pt" });
    }
    const state = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      step: content.step,
      weights: content.weights.kind,
      optimizer: { kind: content.optimizer.kind, step: content.optimizer.step },
      data: content.data,
      rng: content.rng,
      trainer: content.trainer,
      run: content.run,
      ...(content.notes !== undefined && { notes: content.notes }),
    };
    await writeFileAtomic(join(temp, STATE_NAME), `${JSON.stringify(state, null, 1)}\n`);
    await fsyncPath(temp);
    // replace an existing checkpoint of the same step: move it aside first (rename cannot replace a
    // non-empty directory), then remove it once the new one is in place
    let aside: string | null = null;
    if (await exists(final)) {
      aside = `${temp}.old`;
      await rename(final, aside);
    }
    await rename(temp, final);
    await fsyncPath(root);
    if (aside !== null) await rm(aside, { recursive: true, force: true });
  } catch (error) {
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
  await removeStaleTemps(root);
  return final;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes temp directories of this process's earlier saves and of processes that no longer run. */
async function removeStaleTemps(root: string): Promise<void> {
  for (const name of await readdir(root)) {
    const m = /^\.checkpoint-[0-9]+\.([0-9]+)\.[0-9a-f]+\.tmp(\.old)?$/.exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && isAlive(pid)) continue;
    await rm(join(root, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Complete checkpoints under root, oldest first: [{step, path}]. */
export async function listCheckpoints(root: string): Promise<{ step: number; path: string }[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const out: { step: number; path: string }[] = [];
  for (const name of names) {
    const m = CHECKPOINT_RE.exec(name);
    if (m !== null && (await exists(join(root, name, STATE_NAME))))
      out.push({ step: Number(m[1]), path: join(root, name) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint under root, or null. */
export async function latestCheckpoint(root: string): Promise<string | null> {
  const all = await listCheckpoints(root);
  return all.length === 0 ? null : all[all.length - 1].path;
}

/** Deletes all but the newest `keep` checkpoints. */
export async function pruneCheckpoints(root: string, keep: number): Promise<void> {
  const all = await listCheckpoints(root);
  for (const c of all.slice(0, Math.max(0, all.length - keep)))
    await rm(c.path, { recursive: true, force: true });
}

function bad(dir: string, detail: string): Error {
  return new Error(`checkpoint ${dir}: ${detail}`);
}

/**
 * Reads a checkpoint directory. `linears` (the model's) are needed to validate a LoRA adapter.
 * Sizes are validated here against the files; the trainer checks them against its parameters.
 */
export async function loadCheckpoint(
  dir: string,
  linears: readonly LinearInfo[],
): Promise<CheckpointContent> {
  const statePath = join(dir, STATE_NAME);
  let size: number;
  try {
    size = (await stat(statePath)).size;
  } catch {
    throw bad(dir, `no ${STATE_NAME} (not a complete checkpoint)`);
  }
  if (size > MAX_STATE_BYTES) throw bad(dir, `${STATE_NAME} is ${size} bytes, too large`);
  const raw = parseJsonStrict(await readFile(statePath, "utf8"), statePath);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw bad(dir, `${STATE_NAME} is not a JSON object`);
  const s = raw as Record<string, unknown>;
  if (s.format !== CHECKPOINT_FORMAT || s.version !== CHECKPOINT_VERSION) {
    throw bad(
      dir,
      `unknown format ${JSON.stringify(s.format)} version ${JSON.stringify(s.version)}`,
    );
  }
  const step = s.step;
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0)
    throw bad(dir, `bad step ${JSON.stringify(step)}`);
  const opt = s.optimizer as { kind?: unknown; step?: unknown } | null;
  if (
    typeof opt !== "object" ||
    opt === null ||
    (opt.kind !== "adamw" && opt.kind !== "sgd") ||
    typeof opt.step !== "number"
  ) {
    throw bad(dir, "bad optimizer record");
  }
  if (typeof s.data !== "object" || s.data === null || Array.isArray(s.data))
    throw bad(dir, "bad data state");
  if (s.rng !== null && !Array.isArray(s.rng)) throw bad(dir, "bad rng state");
  const trainer = s.trainer as TrainerBookkeeping | null;
  if (
    typeof trainer !== "object" ||
    trainer === null ||
    typeof trainer.evalsWithoutImprovement !== "number"
  ) {
    throw bad(dir, "bad trainer record");
  }
  if (typeof s.run !== "object" || s.run === null) throw bad(dir, "bad run record");
  if (s.notes !== undefined && (typeof s.notes !== "object" || s.notes === null))
    throw bad(dir, "bad notes record");

  const tensors = new Map<string, Float32Array>();
  const optFile = await SafetensorsFile.open(join(dir, OPTIMIZER_NAME));
  try {
    for (const name of optFile.entries.keys()) tensors.set(name, await optFile.readF32(name));
  } finally {
    await optFile.close();
  }

  let weights: TrainedWeights;
  if (s.weights === "lora") {
    const loaded = await loadAdapter(join(dir, ADAPTER_DIR), linears);
    weights = { kind: "lora", config: loaded.config, adapters: loaded.weights };
  } else if (s.weights === "full") {
    const params = new Map<string, { shape: number[]; data: Float32Array }>();
    const f = await SafetensorsFile.open(join(dir, FULL_WEIGHTS_NAME));
    try {
      for (const [name, entry] of f.entries)
        params.set(name, { shape: [...entry.shape], data: await f.readF32(name) });
    } finally {
      await f.close();
    }
    weights = { kind: "full", params };
  } else {
    throw bad(dir, `bad weights kind ${JSON.stringify(s.weights)}`);
  }
  return {
    step,
    optimizer: { kind: opt.kind, step: opt.step, tensors },
    data: s.data as DataState,
    rng: s.rng as number[] | null,
    trainer: {
      bestEvalLoss: trainer.bestEvalLoss ?? null,
      evalsWithoutImprovement: trainer.evalsWithoutImprovement,
      lastLoss: typeof trainer.lastLoss === "number" ? trainer.lastLoss : null,
    },
    run: s.run as Record<string, unknown>,
    ...(s.notes !== undefined && { notes: s.notes as Record<string, unknown> }),
    weights,
  };
}
