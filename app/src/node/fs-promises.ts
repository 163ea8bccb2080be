// node:fs/promises for the browser build (app/vite.config.ts aliases it here), over the in-memory
// file system of vfs.ts: the calls the library makes to read models, tokenizers and data and to
// write adapters and train.jsonl, with Node's signatures and error codes.

import {
  absolute,
  deleteDir,
  deleteFile,
  fsError,
  getFile,
  isDir,
  list,
  makeDir,
  makeDirs,
  move,
  putFile,
  removeTree,
  type Stats,
  statOf,
} from "./vfs.js";

/** Lets the worker's message queue run (a "stop" click) between file operations, as real I/O does. */
const yieldToEvents = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

function textOrBytes(bytes: Uint8Array, encoding: unknown): string | Uint8Array {
  const enc =
    typeof encoding === "string" ? encoding : (encoding as { encoding?: string })?.encoding;
  return enc === undefined || enc === null ? bytes : new TextDecoder().decode(bytes);
}

function toBytes(data: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
}

/** An open file: reads by range from its Blob, or collects the written chunks until close. */
export class FileHandle {
  private readonly chunks: Uint8Array<ArrayBuffer>[] = [];
  private closed = false;
  private readonly path: string;
  /** The file's content when opened for reading; null when opened for writing. */
  private readonly blob: Blob | null;

  constructor(path: string, blob: Blob | null) {
    this.path = path;
    this.blob = blob;
  }

  async read(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number; buffer: Uint8Array }> {
    if (this.blob === null) throw fsError("EBADF", "read", this.path);
    const bytes = new Uint8Array(await this.blob.slice(position, position + length).arrayBuffer());
    buffer.set(bytes, offset);
    return { bytesRead: bytes.length, buffer };
  }

  async readFile(encoding?: unknown): Promise<string | Uint8Array> {
    if (this.blob === null) throw fsError("EBADF", "read", this.path);
    return textOrBytes(new Uint8Array(await this.blob.arrayBuffer()), encoding);
  }

  async write(
    data: Uint8Array,
    offset = 0,
    length = data.byteLength - offset,
  ): Promise<{ bytesWritten: number }> {
    this.chunks.push(new Uint8Array(data.subarray(offset, offset + length)));
    return { bytesWritten: length };
  }

  async stat(): Promise<Stats> {
    return statOf(this.path);
  }

  async sync(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.blob === null) putFile(this.path, new Blob(this.chunks));
  }
}

export async function open(path: string, flags = "r"): Promise<FileHandle> {
  const p = absolute(path);
  if (flags === "r") {
    const blob = getFile(p);
    if (blob === undefined) throw fsError(isDir(p) ? "EISDIR" : "ENOENT", "open", p);
    return new FileHandle(p, blob);
  }
  if (flags.includes("x") && (getFile(p) !== undefined || isDir(p)))
    throw fsError("EEXIST", "open", p);
  if (!isDir(p.slice(0, p.lastIndexOf("/")) || "/")) throw fsError("ENOENT", "open", p);
  putFile(p, new Blob([]));
  return new FileHandle(p, null);
}

export async function readFile(path: string, encoding?: unknown): Promise<string | Uint8Array> {
  const blob = getFile(path);
  if (blob === undefined) throw fsError(isDir(path) ? "EISDIR" : "ENOENT", "open", absolute(path));
  return textOrBytes(new Uint8Array(await blob.arrayBuffer()), encoding);
}

export async function writeFile(path: string, data: string | Uint8Array): Promise<void> {
  putFile(path, new Blob([toBytes(data)]));
}

export async function appendFile(path: string, data: string | Uint8Array): Promise<void> {
  const old = getFile(path);
  putFile(path, new Blob(old === undefined ? [toBytes(data)] : [old, toBytes(data)]));
  await yieldToEvents();
}

export async function copyFile(from: string, to: string): Promise<void> {
  const blob = getFile(from);
  if (blob === undefined) throw fsError("ENOENT", "copyfile", absolute(from));
  putFile(to, blob);
}

export async function stat(path: string): Promise<Stats> {
  return statOf(path);
}

/** There are no links: lstat is stat. */
export async function lstat(path: string): Promise<Stats> {
  return statOf(path);
}

export async function realpath(path: string): Promise<string> {
  statOf(path);
  return absolute(path);
}

export async function readdir(path: string): Promise<string[]> {
  return list(path);
}

export async function mkdir(path: string, options?: { recursive?: boolean }): Promise<void> {
  if (options?.recursive === true) makeDirs(path);
  else makeDir(path);
}

export async function rename(from: string, to: string): Promise<void> {
  move(from, to);
}

export async function unlink(path: string): Promise<void> {
  deleteFile(path);
}

export async function rmdir(path: string): Promise<void> {
  deleteDir(path);
}

export async function rm(path: string, options?: { force?: boolean }): Promise<void> {
  if (getFile(path) === undefined && !isDir(path)) {
    if (options?.force === true) return;
    throw fsError("ENOENT", "rm", absolute(path));
  }
  removeTree(path);
}

export async function link(): Promise<void> {
  throw fsError("ENOSYS", "link", "(the browser's in-memory file system has no links)");
}
