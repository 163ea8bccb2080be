// Reads a run directory (train.jsonl + optional run.json, see run-log.ts) from disk on Node.
// The display name is run.json's "name", else the directory's base name. Files over MAX_FILE_BYTES
// are refused before reading; every error names the file.

import { readFile, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import {
  EMPTY_SUMMARY,
  parseRunSummary,
  parseTrainLog,
  RUN_LOG_FILE,
  RUN_SUMMARY_FILE,
  type RunLog,
} from "./run-log.js";

const MAX_FILE_BYTES = 256 * 1024 * 1024;

async function readBounded(path: string): Promise<string | null> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new Error(`${path}: not a file`);
    size = s.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  if (size > MAX_FILE_BYTES)
    throw new Error(`${path}: ${size} bytes, more than the ${MAX_FILE_BYTES} allowed`);
  return readFile(path, "utf8");
}

export async function readRunDir(dir: string): Promise<RunLog> {
  const logPath = join(dir, RUN_LOG_FILE);
  const logText = await readBounded(logPath);
  if (logText === null)
    throw new Error(
      `${dir}: no ${RUN_LOG_FILE} (is this a run directory written by \`loraga train\`?)`,
    );
  const { train, eval: evals } = parseTrainLog(logText, logPath);
  if (train.length === 0) throw new Error(`${logPath}: no training steps logged`);
  const summaryPath = join(dir, RUN_SUMMARY_FILE);
  const summaryText = await readBounded(summaryPath);
  const summary = summaryText === null ? EMPTY_SUMMARY : parseRunSummary(summaryText, summaryPath);
  return { name: summary.name ?? basename(resolve(dir)), summary, train, eval: evals };
}
