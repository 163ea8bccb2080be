// Option layering for every subcommand: flags given on the command line win, then values from a
// YAML or JSON file named by --config, then the command's defaults. Config keys are the long flag
// names, either as written on the command line ("batch-size") or camelCased ("batchSize").

import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { decodeUtf8, Utf8Error } from "../io/decode.js";

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Reads a --config file into a flat object; errors name the file. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = decodeUtf8(readFileSync(path), path);
  } catch (err) {
    if (err instanceof Utf8Error) throw new UsageError(`--config ${err.message}`);
    throw new UsageError(`--config ${path}: cannot read: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(`--config ${path}: ${(err as Error).message.split("\n")[0]}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`--config ${path}: expected a mapping of option names to values`);
  }
  return value as Record<string, unknown>;
}

const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Merges --config values under the command-line flags. Unknown keys are an error naming the key
 * and listing the command's options.
 */
export function resolveOptions(command: Command): Record<string, unknown> {
  const options = command.opts();
  const configPath = options.config as string | undefined;
  if (configPath === undefined) return options;
  const fromFile = readConfigFile(configPath);
  const known = new Map(
    command.options.map((o) => [
      camel(o.long?.replace(/^--/, "") ?? o.attributeName()),
      o.attributeName(),
    ]),
  );
  const merged: Record<string, unknown> = { ...options };
  for (const [key, value] of Object.entries(fromFile)) {
    const attribute = known.get(camel(key));
    if (attribute === undefined || attribute === "config") {
      const names = [...known.keys()].filter((k) => k !== "config").join(", ");
      throw new UsageError(`--config ${configPath}: unknown option "${key}" (options: ${names})`);
    }
    if (command.getOptionValueSource(attribute) !== "cli") {
      merged[attribute] =
        typeof value === "number" || typeof value === "boolean" ? value : String(value);
    }
  }
  return merged;
}
