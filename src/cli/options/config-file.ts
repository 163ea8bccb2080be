// Reads the file named by --config: a YAML or JSON mapping of option names (the long flag names)
// to values. What the values mean, and their precedence under the flags, is options/schema.ts's.

import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { decodeUtf8, Utf8Error } from "../../io/decode.js";
import { UsageError } from "../errors.js";

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Reads a --config file into a flat object; errors name the file. */
export function readConfigFile(path: string): Readonly<Record<string, unknown>> {
  let text: string;
  try {
    text = decodeUtf8(readFileSync(path), path);
  } catch (err) {
    if (err instanceof Utf8Error) throw new UsageError(`--config ${err.message}`);
    throw new UsageError(`--config ${path}: cannot read: ${messageOf(err)}`);
  }
  let value: unknown;
  try {
    value = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(`--config ${path}: ${messageOf(err).split("\n")[0]}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`--config ${path}: expected a mapping of option names to values`);
  }
  return Object.fromEntries(Object.entries(value));
}
