// Atomic file output: the destination either keeps its old content or gets the complete new
// content, never a half-written file.
//
// Contract: data goes to a fresh temp file in the destination's directory (same file system, so
// rename is atomic on POSIX), is fsync'ed, then renamed over the destination; the directory is
// fsync'ed afterwards where the platform allows it. On any error the temp file is closed and
// removed and the error is rethrown unchanged. Temp names: `.<basename>.<pid>.<random>.tmp`.

import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Appends bytes to the temp file being written; returns once they are handed to the OS. */
export type WriteChunk = (bytes: Uint8Array) => Promise<void>;

function tempPathFor(path: string): string {
  const suffix = `${process.pid}.${randomBytes(6).toString("hex")}`;
  return join(dirname(path), `.${basename(path)}.${suffix}.tmp`);
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, null);
    if (bytesWritten <= 0) throw new Error(`short write (${done} of ${bytes.byteLength} bytes)`);
    done += bytesWritten;
  }
}

/** fsync a directory so a rename inside it is durable; silently skipped where unsupported. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch {
    // Windows and some file systems cannot open or fsync directories; the rename still happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Streams a file into place atomically: `produce` is called with a `write` function and may call it
 * any number of times; when it resolves the data is fsync'ed and renamed onto `path`. If `produce`
 * (or any write) throws, the temp file is removed and `path` is left untouched.
 */
export async function writeFileAtomicStreaming(
  path: string,
  produce: (write: WriteChunk) => Promise<void>,
): Promise<void> {
  const tempPath = tempPathFor(path);
  const handle = await open(tempPath, "wx", 0o644);
  let closed = false;
  try {
    await produce((bytes) => writeAll(handle, bytes));
    await handle.sync();
    await handle.close();
    closed = true;
    await rename(tempPath, path);
  } catch (error) {
    if (!closed) await handle.close().catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Writes `data` to `path` atomically (temp file in the same directory, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  await writeFileAtomicStreaming(path, (write) => write(bytes));
}
