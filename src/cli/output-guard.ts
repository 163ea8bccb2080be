// The output rule, the same in every command: an output never replaces or mixes into what is
// already there unless the user says so, and never touches an input of the same command.
//
// guardOutput(spec), called before any work:
//   1. an output that is an input, or holds one (real paths compared, symlinks resolved), or lies
//      inside an input directory where something already exists, is refused, --overwrite or not;
//   2. an existing file, or a non-empty directory, is refused unless spec.overwrite, with a one-line
//      error naming the flag that allows it (spec.overrideFlag, default --overwrite);
//   3. the output directory (kind "dir") or the file's directory (kind "file") is created and a
//      temp file is written and removed there, so /proc/foo, a path under a regular file or a
//      directory without write permission fails at once with the path and the OS reason.
// Writes themselves stay atomic (io/atomic-write.ts); this module only decides whether to start.
// claimRunDir applies the rule to a training run directory: --resume instead of --overwrite, and a
// lock so that one process at a time trains there.
// removingCreatedDirs runs a command so that, when it fails, the directories its guard created are
// removed again if they are still empty: a command stopped by a check that needs the loaded model
// (LoRA-GA's rank limit, --eval-split against the rows) leaves nothing behind.

import { existsSync } from "node:fs";
import { readdir, rmdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  contains,
  makeDirs,
  OutputPathError,
  outputState,
  probeWritable,
  resolveReal,
} from "../io/output-paths.js";
import { listCheckpoints } from "../train/checkpoint.js";
import { acquireRunLock, type RunLock } from "../train/run-lock.js";
import { UsageError } from "./errors.js";

export interface OutputSpec {
  /** The flag that names the output, for messages ("--out"). */
  flag: string;
  path: string;
  /** A single file (written atomically) or a directory of files. */
  kind: "file" | "dir";
  /** The user allowed replacing what is there. */
  overwrite: boolean;
  /** The flag that allows replacing, named in the refusal (default "--overwrite"). */
  overrideFlag?: string;
  /** The command's inputs as [flag, path]; undefined paths (flags not given) are skipped. */
  inputs?: ReadonlyArray<readonly [string, string | undefined]>;
}

/** Applies the output rule (see the file header); throws UsageError or OutputPathError. */
export async function guardOutput(spec: OutputSpec): Promise<void> {
  const { flag, path } = spec;
  const where = `${flag} ${path}`;
  try {
    const state = await outputState(path);
    const real = await resolveReal(path);
    for (const [inputFlag, input] of spec.inputs ?? []) {
      if (input === undefined) continue;
      const inputReal = await resolveReal(input);
      if (real === inputReal)
        throw new UsageError(`${where} is the same path as ${inputFlag} ${input}; choose another`);
      if (contains(real, inputReal))
        throw new UsageError(`${where} contains ${inputFlag} ${input}; choose another`);
      if (state !== "missing" && state !== "empty-dir" && contains(inputReal, real))
        throw new UsageError(
          `${where} already exists inside ${inputFlag} ${input}; choose a path outside the inputs`,
        );
    }
    const override = spec.overrideFlag ?? "--overwrite";
    if (spec.kind === "file") {
      if (state === "empty-dir" || state === "non-empty-dir")
        throw new UsageError(`${where} is a directory; give a file path`);
      if (state === "other") throw new UsageError(`${where} exists and is not a regular file`);
      if (state === "file" && !spec.overwrite)
        throw new UsageError(`${where} already exists; pass ${override} to replace it`);
      const dir = dirname(path);
      await makeDirs(dir);
      await probeWritable(dir);
    } else {
      if (state === "file" || state === "other")
        throw new UsageError(`${where} exists and is not a directory`);
      if (state === "non-empty-dir" && !spec.overwrite)
        throw new UsageError(`${where} is not empty; pass ${override} to replace its contents`);
      await makeDirs(path);
      await probeWritable(path);
    }
  } catch (error) {
    if (error instanceof OutputPathError) throw new OutputPathError(`${where}: ${error.message}`);
    throw error;
  }
}

/** Entries of a run directory that belong to the lock and the write probe, not to the run. */
const BOOKKEEPING = /^\.loraga[.-]/;
const RUN_ENTRIES = new Set(["train.jsonl", "checkpoints", "init-adapter", "adapter", "model"]);

export interface RunDirSpec {
  /** The run directory (--out). */
  out: string;
  /** --resume was given. */
  resume: boolean;
  /** The log file (--log, default OUT/train.jsonl). */
  log: string;
  /** The command's inputs as [flag, path]; undefined paths are skipped. */
  inputs?: ReadonlyArray<readonly [string, string | undefined]>;
}

export interface RunDirClaim {
  lock: RunLock;
  /** The newest checkpoint, for --resume; null for a fresh start. */
  resumeFrom: string | null;
}

/**
 * The output rule for a training run directory, which belongs to one process: creates it, takes
 * its lock (train/run-lock.ts) and then, holding it, checks that a fresh start finds it empty and
 * that --resume finds an unfinished run with a checkpoint. Inputs may not lie inside it, nor be
 * its log (--log). The caller releases the lock when the run ends.
 */
export async function claimRunDir(spec: RunDirSpec): Promise<RunDirClaim> {
  const { out } = spec;
  const where = `--out ${out}`;
  const state = await outputState(out).catch((error) => {
    throw error instanceof OutputPathError
      ? new OutputPathError(`${where}: ${error.message}`)
      : error;
  });
  if (state === "file" || state === "other")
    throw new UsageError(`${where} exists and is not a directory`);
  if (spec.resume && (state === "missing" || state === "empty-dir"))
    throw new UsageError(`--resume: ${out} holds no run to resume`);
  const real = await resolveReal(out);
  const logReal = await resolveReal(spec.log);
  for (const [flag, input] of spec.inputs ?? []) {
    if (input === undefined) continue;
    const inputReal = await resolveReal(input);
    if (contains(real, inputReal))
      throw new UsageError(`${where} contains ${flag} ${input}; keep inputs outside the run`);
    if (logReal === inputReal)
      throw new UsageError(`--log ${spec.log} is the same path as ${flag} ${input}`);
  }
  await guardOutput({ flag: "--out", path: out, kind: "dir", overwrite: true });
  const lock = await acquireRunLock(out);
  try {
    const names = (await readdir(out)).filter((n) => !BOOKKEEPING.test(n));
    const checkpoints = await listCheckpoints(join(out, "checkpoints"));
    const last = checkpoints.at(-1) ?? null;
    const finished = names.includes("run.json");
    if (!spec.resume) {
      if (finished) throw new UsageError(`${where} holds a finished run; choose a new directory`);
      if (names.some((n) => RUN_ENTRIES.has(n))) {
        const at = last === null ? "no checkpoint" : `last checkpoint at step ${last.step}`;
        throw new UsageError(
          `${where} holds an unfinished run (${at}); pass --resume to continue it, or choose a new directory`,
        );
      }
      if (names.length > 0)
        throw new UsageError(`${where} is not empty; choose a new directory for the run`);
      if ((await outputState(spec.log)) !== "missing")
        throw new UsageError(
          `--log ${spec.log} already exists; choose a new file (--resume continues its run)`,
        );
      return { lock, resumeFrom: null };
    }
    if (finished) {
      throw new UsageError(
        `--resume: the run in ${out} is finished (${join(out, "run.json")} is written); nothing to resume`,
      );
    }
    if (last === null) {
      throw new UsageError(
        `--resume: no checkpoint in ${join(out, "checkpoints")} (start runs with --checkpoint-every to resume them)`,
      );
    }
    return { lock, resumeFrom: last.path };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/**
 * Runs `work`; when it throws, removes the directories on the way to `path` that did not exist
 * before, deepest first, as long as they are empty (so nothing written is ever removed).
 */
export async function removingCreatedDirs<T>(path: string, work: () => Promise<T>): Promise<T> {
  const missing: string[] = [];
  for (let at = resolve(path); !existsSync(at) && dirname(at) !== at; at = dirname(at))
    missing.push(at);
  try {
    return await work();
  } catch (error) {
    for (const dir of missing) {
      try {
        await rmdir(dir); // fails on a non-empty directory: what is written stays
      } catch {
        break;
      }
    }
    throw error;
  }
}
