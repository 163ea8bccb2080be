// JSON Lines reading for user data files. Each non-blank line is one JSON object; a malformed line
// is reported as `FILE:LINE: why`. The file is untrusted: lines are bounded in length and the whole
// file is streamed, never loaded at once. Lines end at "\n" (a "\r" before it is dropped) and are
// decoded as strict UTF-8 (io/decode.ts): an invalid byte is an error naming FILE:LINE.

import { createReadStream } from "node:fs";
import { decodeUtf8, Utf8Error } from "../io/decode.js";

/** Longest accepted line (bytes). A longer line is an error, not an allocation. */
const MAX_LINE_BYTES = 64 * 2 ** 20;

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

export interface JsonlRow {
  /** 1-based line number in the file. */
  line: number;
  value: Record<string, unknown>;
}

/** Yields every non-blank line of a JSONL file as an object, in file order. */
export async function* readJsonl(path: string): AsyncGenerator<JsonlRow> {
  const stream = createReadStream(path);
  const opened = new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", (err) => reject(err));
  });
  try {
    await opened;
  } catch (err) {
    throw new DataError(`${path}: cannot read: ${(err as Error).message}`);
  }
  let line = 0;
  try {
    for await (const bytes of splitLines(stream, path)) {
      line++;
      let text: string;
      try {
        text = decodeUtf8(bytes, path, line);
      } catch (err) {
        if (err instanceof Utf8Error) throw new DataError(err.message);
        throw err;
      }
      if (text.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new DataError(`${path}:${line}: invalid JSON: ${(err as Error).message}`);
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw new DataError(`${path}:${line}: expected a JSON object, got ${describe(value)}`);
      }
      yield { line, value: value as Record<string, unknown> };
    }
  } finally {
    stream.destroy();
  }
}

/** The raw bytes of every line of a byte stream, without "\n" or "\r\n". */
async function* splitLines(
  stream: AsyncIterable<Buffer>,
  path: string,
): AsyncGenerator<Uint8Array> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 1;
  const finish = (piece: Buffer): Uint8Array => {
    const all = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
    pending = [];
    pendingBytes = 0;
    line++;
    return all.length > 0 && all[all.length - 1] === 0x0d ? all.subarray(0, all.length - 1) : all;
  };
  for await (const chunk of stream) {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      if (pendingBytes + nl - start > MAX_LINE_BYTES) throw tooLong(path, line);
      yield finish(chunk.subarray(start, nl));
      start = nl + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > MAX_LINE_BYTES) throw tooLong(path, line);
    }
  }
  if (pendingBytes > 0) yield finish(Buffer.alloc(0));
}

function tooLong(path: string, line: number): DataError {
  return new DataError(`${path}:${line}: line is longer than ${MAX_LINE_BYTES} bytes`);
}

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}
