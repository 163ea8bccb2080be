// File-system facts about output paths, for the output rule every command follows (the rule and
// its messages live in cli/output-guard.ts).
//
// Contract:
//   makeDirs(path)      mkdir -p that always terminates: Node's own recursive mkdir loops forever
//                       when the file system answers ENOENT for a directory whose parent exists
//                       (/proc/foo); this walks up to the nearest existing ancestor once, then
//                       creates each missing component with a plain mkdir, and turns any refusal
//                       into an OutputPathError naming the path and the OS reason.
//   outputState(path)   what is there now: missing | file | empty-dir | non-empty-dir | other.
//   resolveReal(path)   the real path (symlinks resolved) of a path that may not exist yet: the
//                       realpath of its nearest existing ancestor joined with the missing rest.
//   contains(a, b)      whether real path b is a or lies inside a.
//   probeWritable(dir)  creates and removes a temp file in dir, so that a read-only or pseudo file
//                       system (/proc, /sys) fails before any work instead of after it.
// Nothing here deletes or replaces user files.

import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, realpath, stat, unlink } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";

/** An output path that cannot be used; the message names the path and the OS reason. */
export class OutputPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OutputPathError";
  }
}

/** "ENOENT: no such file or directory" from a Node file-system error, without the call details. */
function osReason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (typeof e?.code !== "string") return String((error as Error)?.message ?? error);
  const text = String(e.message ?? "")
    .replace(/^[A-Z]+: /, "")
    .replace(/, [a-z]+ '.*'$/, "");
  return `${e.code}: ${text}`;
}

async function statOrNull(path: string) {
  try {
    return await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code === "ENOTDIR") return "not-dir" as const;
    throw new OutputPathError(`${path}: ${osReason(error)}`);
  }
}

/** Creates `path` and its missing parents (see the file header); an existing directory is fine. */
export async function makeDirs(path: string): Promise<void> {
  const target = resolve(path);
  const missing: string[] = [];
  let at = target;
  for (;;) {
    const s = await statOrNull(at);
    if (s === "not-dir") {
      missing.push(at);
      at = dirname(at);
      continue;
    }
    if (s !== null) {
      if (!s.isDirectory()) {
        throw new OutputPathError(
          `cannot create directory ${path}: ${at} exists and is not a directory`,
        );
      }
      break;
    }
    const parent = dirname(at);
    if (parent === at) break; // the root itself is missing: let mkdir report it
    missing.push(at);
    at = parent;
  }
  for (const dir of missing.reverse()) {
    try {
      await mkdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") {
        const s = await statOrNull(dir);
        if (s !== null && s !== "not-dir" && s.isDirectory()) continue; // created meanwhile
      }
      throw new OutputPathError(`cannot create directory ${dir}: ${osReason(error)}`);
    }
  }
}

export type OutputState = "missing" | "file" | "empty-dir" | "non-empty-dir" | "other";

/** What `path` holds now (symlinks followed; a dangling symlink counts as a file). */
export async function outputState(path: string): Promise<OutputState> {
  const s = await statOrNull(path);
  if (s === "not-dir") {
    let parent = dirname(resolve(path));
    while ((await statOrNull(parent)) === "not-dir") parent = dirname(parent);
    throw new OutputPathError(`${parent} is a file, not a directory`);
  }
  if (s === null) {
    const link = await lstat(path).catch(() => null);
    return link === null ? "missing" : "file";
  }
  if (s.isFile()) return "file";
  if (!s.isDirectory()) return "other";
  try {
    return (await readdir(path)).length === 0 ? "empty-dir" : "non-empty-dir";
  } catch (error) {
    throw new OutputPathError(`${path}: cannot list: ${osReason(error)}`);
  }
}

/** The real path of `path`, which need not exist (see the file header). */
export async function resolveReal(path: string): Promise<string> {
  const absolute = resolve(path);
  let at = absolute;
  for (;;) {
    try {
      const real = await realpath(at);
      const rest = relative(at, absolute);
      return rest === "" ? real : join(real, rest);
    } catch {
      const parent = dirname(at);
      if (parent === at) return absolute;
      at = parent;
    }
  }
}

/** Whether real path `inner` is `outer` itself or lies inside it. */
export function contains(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  const prefix = outer.endsWith(sep) ? outer : outer + sep;
  return inner.startsWith(prefix);
}

/** Creates and removes a temp file in the directory `dir` (which must exist). */
export async function probeWritable(dir: string): Promise<void> {
  const probe = join(dir, `.loraga-probe.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    const handle = await open(probe, "wx", 0o644);
    await handle.close();
  } catch (error) {
    throw new OutputPathError(`cannot write in ${dir}: ${osReason(error)}`);
  }
  await unlink(probe).catch(() => undefined);
}
