// The in-memory file system behind the browser build's node:fs and node:fs/promises (this folder
// stands in for Node's built-in modules; app/vite.config.ts aliases them here). It lets the
// library's path-based I/O (loadModel, loadTokenizer, loadExamples, PeftModel.save, train's log
// file) run unchanged in a Web Worker:
// - files the person opened are mounted as Blobs (File objects) and read on demand, by byte
//   range, so a large safetensors file is never copied whole;
// - files the library writes are kept as Blobs and read back by the page to offer downloads;
// - nothing is persisted: it lives as long as the worker.
// Paths are POSIX, absolute after normalisation ("/model/config.json"); directories are implicit
// for mounted files and explicit (mkdir) for written ones.

import { normalize } from "./path.js";

const files = new Map<string, Blob>();
const dirs = new Set<string>(["/"]);

/** An Error with Node's `code` (ENOENT, EEXIST, ...), which the library's messages inspect. */
export function fsError(code: string, syscall: string, path: string): Error {
  const error = new Error(`${code}: ${syscall} '${path}'`) as Error & { code: string };
  error.code = code;
  return error;
}

export function absolute(path: string): string {
  return normalize(path.startsWith("/") ? path : `/${path}`);
}

function parentOf(path: string): string {
  const at = path.lastIndexOf("/");
  return at <= 0 ? "/" : path.slice(0, at);
}

function addParents(path: string): void {
  for (let p = parentOf(path); !dirs.has(p); p = parentOf(p)) dirs.add(p);
}

/** Puts a file at `path` (creating its directories), replacing any file there. */
export function putFile(path: string, data: Blob): void {
  const p = absolute(path);
  addParents(p);
  files.set(p, data);
}

/** Removes every file and directory under `path` (and `path` itself). */
export function removeTree(path: string): void {
  const p = absolute(path);
  const inside = (q: string) => q === p || q.startsWith(`${p}/`);
  for (const f of [...files.keys()]) if (inside(f)) files.delete(f);
  for (const d of [...dirs]) if (inside(d) && d !== "/") dirs.delete(d);
}

export function getFile(path: string): Blob | undefined {
  return files.get(absolute(path));
}

export function isDir(path: string): boolean {
  return dirs.has(absolute(path));
}

export function makeDir(path: string): void {
  const p = absolute(path);
  if (files.has(p) || dirs.has(p)) throw fsError("EEXIST", "mkdir", p);
  if (!dirs.has(parentOf(p))) throw fsError("ENOENT", "mkdir", p);
  dirs.add(p);
}

/** mkdir -p: `path` and its missing parents; a file in the way is ENOTDIR. */
export function makeDirs(path: string): void {
  const p = absolute(path);
  for (let q = p; q !== "/"; q = parentOf(q)) {
    if (files.has(q)) throw fsError("ENOTDIR", "mkdir", p);
  }
  addParents(p);
  dirs.add(p);
}

export function deleteFile(path: string): void {
  const p = absolute(path);
  if (!files.delete(p)) throw fsError("ENOENT", "unlink", p);
}

export function deleteDir(path: string): void {
  const p = absolute(path);
  if (!dirs.has(p)) throw fsError("ENOENT", "rmdir", p);
  if (list(p).length > 0) throw fsError("ENOTEMPTY", "rmdir", p);
  dirs.delete(p);
}

export function move(from: string, to: string): void {
  const a = absolute(from);
  const b = absolute(to);
  const file = files.get(a);
  if (file !== undefined) {
    files.delete(a);
    putFile(b, file);
    return;
  }
  if (!dirs.has(a)) throw fsError("ENOENT", "rename", a);
  // a directory: move everything under it
  const moved = (q: string) => b + q.slice(a.length);
  for (const [f, blob] of [...files]) {
    if (f.startsWith(`${a}/`)) {
      files.delete(f);
      putFile(moved(f), blob);
    }
  }
  for (const d of [...dirs]) {
    if (d === a || d.startsWith(`${a}/`)) {
      dirs.delete(d);
      dirs.add(moved(d));
    }
  }
  addParents(b);
}

/** Names directly inside directory `path`. */
export function list(path: string): string[] {
  const p = absolute(path);
  if (!dirs.has(p)) throw fsError("ENOENT", "scandir", p);
  const prefix = p === "/" ? "/" : `${p}/`;
  const names = new Set<string>();
  for (const q of [...files.keys(), ...dirs]) {
    if (q.startsWith(prefix) && q.length > prefix.length)
      names.add(q.slice(prefix.length).split("/")[0]);
  }
  return [...names].sort();
}

/** What Node's fs.Stats offers that the library reads. */
export interface Stats {
  size: number;
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}

export function statOf(path: string): Stats {
  const p = absolute(path);
  const file = files.get(p);
  if (file === undefined && !dirs.has(p)) throw fsError("ENOENT", "stat", p);
  return {
    size: file?.size ?? 0,
    isFile: () => file !== undefined,
    isDirectory: () => file === undefined,
    isSymbolicLink: () => false,
  };
}
