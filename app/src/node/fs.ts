// node:fs for the browser build (app/vite.config.ts aliases it here): the synchronous checks and
// the read stream the library uses, over the in-memory file system of vfs.ts.

import { absolute, deleteFile, fsError, getFile, type Stats, statOf } from "./vfs.js";

/** Bytes per chunk a read stream yields (as Node's default highWaterMark). */
const CHUNK_BYTES = 64 * 1024;

export function existsSync(path: string): boolean {
  try {
    statOf(path);
    return true;
  } catch {
    return false;
  }
}

export function statSync(path: string): Stats {
  return statOf(path);
}

export function unlinkSync(path: string): void {
  deleteFile(path);
}

export function readFileSync(path: string): never {
  throw fsError("ENOSYS", "readFileSync", absolute(path));
}

export function readdirSync(path: string): never {
  throw fsError("ENOSYS", "readdirSync", absolute(path));
}

/**
 * What data/jsonl.ts reads from fs.createReadStream: "open" or "error" once, then the file's bytes
 * as an async iterable of chunks; destroy() ends it.
 */
export function createReadStream(path: string) {
  const blob = getFile(path);
  let destroyed = false;
  return {
    once(event: "open" | "error", handler: (arg?: unknown) => void): void {
      queueMicrotask(() => {
        if (event === "open" && blob !== undefined) handler();
        if (event === "error" && blob === undefined)
          handler(fsError("ENOENT", "open", absolute(path)));
      });
    },
    destroy(): void {
      destroyed = true;
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
      if (blob === undefined) throw fsError("ENOENT", "open", absolute(path));
      for (let at = 0; at < blob.size && !destroyed; at += CHUNK_BYTES) {
        yield new Uint8Array(await blob.slice(at, at + CHUNK_BYTES).arrayBuffer());
      }
    },
  };
}
