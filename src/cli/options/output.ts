// Output flags: where a command writes (--out), and the checks that an output can be written,
// made before anything runs or is created. (Output policies such as overwriting belong here too.)

import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UsageError } from "../errors.js";
import { required, stringFlag } from "./schema.js";

export const outFlag = (placeholder: "<file>" | "<dir>", help: string) =>
  required(stringFlag(`--out ${placeholder}`, help));

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
 * A directory to write (created with its missing parents): if it exists it must be a writable
 * directory; otherwise its nearest existing ancestor must be one.
 */
export function checkOutputDir(name: string, path: string): void {
  let dir = resolve(path);
  if (existsSync(dir) && !statSync(dir).isDirectory())
    throw new UsageError(`${name} ${path}: exists and is not a directory`);
  while (!existsSync(dir)) dir = dirname(dir);
  if (!statSync(dir).isDirectory())
    throw new UsageError(`${name} ${path}: ${dir} is not a directory`);
  if (!writableDir(dir)) throw new UsageError(`${name} ${path}: ${dir} is not writable`);
}
