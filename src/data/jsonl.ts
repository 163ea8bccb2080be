// JSON Lines reading for user data files. Each non-blank line is one JSON object; a malformed line
// is reported as `FILE:LINE: why`. The file is untrusted: lines are bounded in length and the whole
// file is streamed, never loaded at once.

import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";

/** Longest accepted line (characters). A longer line is an error, not an allocation. */
const MAX_LINE_CHARS = 64 * 2 ** 20;

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
  const stream = createReadStream(path, { encoding: "utf8" });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", (err) => reject(err));
  });
  try {
    await opened;
  } catch (err) {
    throw new DataError(`${path}: cannot read: ${(err as Error).message}`);
  }
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      if (text.trim() === "") continue;
      if (text.length > MAX_LINE_CHARS) {
        throw new DataError(`${path}:${line}: line is longer than ${MAX_LINE_CHARS} characters`);
      }
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
    lines.close();
    stream.destroy();
  }
}

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}
