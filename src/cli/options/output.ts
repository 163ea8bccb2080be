// Output flags: where a command writes (--out), whether it may replace what is there
// (--overwrite), and the checks of the output path that read but never write, made before anything
// runs. The output rule itself (existing output, output = input, the write probe) is applied by
// output-guard.ts at the start of the run, before any work; what only writing can tell (/proc/foo,
// a path under a regular file, no write permission) fails there, naming the OS reason.

import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError } from "../errors.js";
import { required, stringFlag, switchFlag } from "./schema.js";

export const outFlag = (placeholder: "<file>" | "<dir>", help: string) =>
  required(stringFlag(`--out ${placeholder}`, help));

/** Allows replacing an existing --out (output-guard.ts); never an input of the command. */
export const overwriteFlag = switchFlag("--overwrite", "replace an existing output");

function writableDir(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A file to write: its directory must exist and be writable, and it must not be a directory. */
export function checkOutputFile(name: string, path: string): void {
  const parent = dirname(resolve(path));
  if (!existsSync(parent))
    throw new UsageError(`${name} ${path}: directory ${parent} does not exist`);
  if (!statSync(parent).isDirectory())
    throw new UsageError(`${name} ${path}: ${parent} is not a directory`);
  if (!writableDir(parent))
    throw new UsageError(`${name} ${path}: directory ${parent} is not writable`);
  if (existsSync(path) && statSync(path).isDirectory())
    throw new UsageError(`${name} ${path}: is a directory, expected a file name`);
}

/**
 * A directory to write (created with its missing parents): if it exists it must be a directory.
 * Whether it can be created and written is found out by output-guard.ts's probe at the start of
 * the run (an OS error naming the reason, before any work).
 */
export function checkOutputDir(name: string, path: string): void {
  const dir = resolve(path);
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new UsageError(`${name} ${path}: exists and is not a directory`);
}
