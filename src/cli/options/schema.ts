// The one schema of a command's options. Each flag is declared once — commander's flags string, its
// help, the default --help shows, and a parser from a given value to a typed value — and a command's
// schema is an ordered record of flags (the order --help lists them in), keyed by commander's
// attribute name (camelCase of the long flag; "shuffle" for --no-shuffle).
//
// The same parser reads a value given on the command line (a string) and one given in a --config
// file (a YAML/JSON scalar, keyed by the long flag name, kebab-case or camelCase), so both obey the
// same rules, and errors name where the value came from: "--r must be ..." or
// "--config run.yaml: r must be ...". Precedence: command line, then --config, then the flag's
// default; a required flag given nowhere is a usage error. Parsing reads the --config file and
// nothing else (no other file is touched, nothing is written).

import { type Command, Option } from "commander";
import { UsageError } from "../errors.js";
import { readConfigFile } from "./config-file.js";

/** Where a value came from. */
type Source = "cli" | "config";

/** A flag whose given values parse to V; given nowhere it is A (undefined, a default, required). */
export interface Flag<V, A = V | undefined> {
  /** commander's flags string: "--batch-size <n>", "-q, --quiet", "--no-shuffle". */
  readonly flags: string;
  readonly help: string;
  /** Allowed values, shown by --help (checked by `parse`). */
  readonly choices?: readonly string[];
  /** The default --help shows (commander's "(default: ...)"), if any. */
  readonly shownDefault?: string | number | boolean;
  /**
   * value: takes one value; switch: present = true; negated: --no-x, present = false;
   * repeat: each use appends.
   */
  readonly form: "value" | "switch" | "negated" | "repeat";
  /** Parses a given value; `name` says where it came from, for messages. */
  readonly parse: (given: unknown, name: string, source: Source) => V;
  /** The value when given nowhere, or "required" (a usage error naming the flag). */
  readonly absent: { readonly value: A } | "required";
}

export type Schema = Readonly<Record<string, Flag<unknown, unknown>>>;

/** The typed options a schema describes. */
type Options<S extends Schema> = {
  readonly [K in keyof S]: S[K] extends Flag<infer V, infer A> ? V | A : never;
};

export interface Parsed<S extends Schema> {
  readonly options: Options<S>;
  /** `key` as messages name it: "--eval-split", or "--config run.yaml: eval-split" from there. */
  name(key: keyof S & string): string;
}

/** The long flag name without dashes ("batch-size", "no-shuffle"). */
function longName(flag: Flag<unknown, unknown>): string {
  const m = /--([a-z0-9-]+)(?!.*--)/.exec(flag.flags);
  if (m === null) throw new Error(`internal: flag "${flag.flags}" has no long name`);
  return m[1];
}

const camel = (name: string) => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const shown = (v: unknown) => JSON.stringify(v) ?? String(v);

// ---- flag constructors -------------------------------------------------------------------------

/** The text of a value flag's value: a command-line string, or a --config string or number. */
function textOf(given: unknown, name: string, expected: string): string {
  if (typeof given === "string") return given;
  if (typeof given === "number" && Number.isFinite(given)) return String(given);
  throw new UsageError(`${name} must be ${expected}, got ${shown(given)}`);
}

/** A flag taking one value, parsed by `parse` (optional until withDefault or required). */
export function valueFlag<T>(
  flags: string,
  help: string,
  expected: string,
  parse: (text: string, name: string) => T,
  choices?: readonly string[],
): Flag<T> {
  return {
    flags,
    help,
    form: "value",
    ...(choices !== undefined && { choices }),
    parse: (given, name) => parse(textOf(given, name, expected), name),
    absent: { value: undefined },
  };
}

export function intFlag(flags: string, help: string, min = 1): Flag<number> {
  const expected = `an integer >= ${min}`;
  return valueFlag<number>(flags, help, expected, (text, name) => {
    const n = text.trim() === "" ? Number.NaN : Number(text);
    if (!Number.isSafeInteger(n) || n < min)
      throw new UsageError(`${name} must be ${expected}, got "${text}"`);
    return n;
  });
}

/** A finite number, optionally bounded: min (or above it: minOpen), max (or below it: maxOpen). */
export function numberFlag(
  flags: string,
  help: string,
  range: { min?: number; minOpen?: boolean; max?: number; maxOpen?: boolean } = {},
): Flag<number> {
  const { min, minOpen = false, max, maxOpen = false } = range;
  const expected =
    max !== undefined
      ? `a number in ${minOpen ? "(" : "["}${min ?? "-inf"}, ${max}${maxOpen ? ")" : "]"}`
      : min !== undefined
        ? `a number ${minOpen ? ">" : ">="} ${min}`
        : "a number";
  return valueFlag<number>(flags, help, expected, (text, name) => {
    const n = text.trim() === "" ? Number.NaN : Number(text);
    const ok =
      Number.isFinite(n) &&
      (min === undefined || (minOpen ? n > min : n >= min)) &&
      (max === undefined || (maxOpen ? n < max : n <= max));
    if (!ok) throw new UsageError(`${name} must be ${expected}, got "${text}"`);
    return n;
  });
}

/** A non-empty string (a path, a name, a list to split later). */
export function stringFlag(flags: string, help: string): Flag<string> {
  return valueFlag<string>(flags, help, "a string", (text, name) => {
    if (text.length === 0) throw new UsageError(`${name} must not be empty`);
    return text;
  });
}

/** One of `choices` (shown by --help). */
export function choiceFlag<const C extends readonly string[]>(
  flags: string,
  help: string,
  choices: C,
): Flag<C[number]> {
  const expected = `one of ${choices.join(", ")}`;
  return valueFlag<C[number]>(
    flags,
    help,
    expected,
    (text, name) => {
      const choice = choices.find((c) => c === text);
      if (choice === undefined) throw new UsageError(`${name} must be ${expected}, got "${text}"`);
      return choice;
    },
    choices,
  );
}

/** A comma-separated list, kept as its text; a --config list is joined with commas. */
export function listFlag(flags: string, help: string): Flag<string> {
  const plain = stringFlag(flags, help);
  return {
    ...plain,
    parse: (given, name, source) =>
      plain.parse(
        Array.isArray(given) && given.every((v) => typeof v === "string" || typeof v === "number")
          ? given.join(",")
          : given,
        name,
        source,
      ),
  };
}

/** Splits a comma-separated list (trimmed, empty items dropped). */
export function splitList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function booleanOf(given: unknown, name: string): boolean {
  if (typeof given !== "boolean")
    throw new UsageError(`${name} must be true or false, got ${shown(given)}`);
  return given;
}

/** A switch: present on the command line = true; `key: true|false` in --config. Default false. */
export function switchFlag(flags: string, help: string): Flag<boolean, boolean> {
  return {
    flags,
    help,
    form: "switch",
    shownDefault: false,
    parse: (given, name) => booleanOf(given, name),
    absent: { value: false },
  };
}

/** `--no-x`: the value is x, true unless the switch is given (`no-x: true` in --config). */
export function negatedFlag(flags: string, help: string): Flag<boolean, boolean> {
  return {
    flags,
    help,
    form: "negated",
    // commander stores false for a given --no-x; a --config file says "no-x: true"
    parse: (given, name, source) => (source === "cli" ? false : !booleanOf(given, name)),
    absent: { value: true },
  };
}

/** A repeatable value flag (each use appends); a string or a list of strings in --config. */
export function repeatFlag(
  flags: string,
  help: string,
): Flag<readonly string[], readonly string[]> {
  return {
    flags,
    help,
    form: "repeat",
    parse: (given, name) => {
      const items = typeof given === "string" ? [given] : given;
      if (!Array.isArray(items) || !items.every((v): v is string => typeof v === "string"))
        throw new UsageError(`${name} must be a string or a list of strings, got ${shown(given)}`);
      return items;
    },
    absent: { value: [] },
  };
}

/** The flag with a default (shown by --help as `shownValue`, by default the value itself). */
export function withDefault<V>(
  flag: Flag<V>,
  value: V,
  shownValue?: string | number | boolean,
): Flag<V, V> {
  const display = shownValue ?? value;
  return {
    ...flag,
    absent: { value },
    ...((typeof display === "string" ||
      typeof display === "number" ||
      typeof display === "boolean") && { shownDefault: display }),
  };
}

/** The flag as a required option: given nowhere is a usage error. */
export function required<V>(flag: Flag<V>): Flag<V, V> {
  return { ...flag, absent: "required" };
}

// ---- commander ---------------------------------------------------------------------------------

/** Adds the schema's flags to `command`, in order; commander keeps the text, `parse` reads it. */
export function addFlags(command: Command, schema: Schema): void {
  for (const [key, flag] of Object.entries(schema)) {
    const option = new Option(flag.flags, flag.help);
    if (flag.choices !== undefined) option.choices(flag.choices);
    if (flag.form === "value") option.argParser((text: string) => text); // no commander checks
    if (flag.form === "repeat")
      option.argParser((text: string, previous: string[] | undefined) => [
        ...(previous ?? []),
        text,
      ]);
    if (flag.shownDefault !== undefined) option.default(flag.shownDefault);
    if (option.attributeName() !== key)
      throw new Error(
        `internal: flag ${flag.flags} is keyed "${key}", not "${option.attributeName()}"`,
      );
    command.addOption(option);
  }
}

/** The values given on the command line, and the --config file's, before parsing. */
interface Given {
  readonly cli: ReadonlyMap<string, unknown>;
  readonly config: {
    readonly path: string;
    readonly values: Readonly<Record<string, unknown>>;
  } | null;
}

/** Reads what commander saw on the command line (values from defaults are not "given"). */
function givenOf(command: Command, schema: Schema): Given {
  const all = command.opts();
  const cli = new Map<string, unknown>();
  for (const key of Object.keys(schema)) {
    if (command.getOptionValueSource(key) === "cli") cli.set(key, all[key]);
  }
  const path = cli.get("config");
  if (path !== undefined && typeof path !== "string")
    throw new UsageError(`--config must be a file name, got ${shown(path)}`);
  return { cli, config: path === undefined ? null : { path, values: readConfigFile(path) } };
}

/** Parses and merges the given values (command line, then --config, then defaults). */
function parseGiven<S extends Schema>(schema: S, given: Given): Parsed<S> {
  const keys = Object.keys(schema);
  const byConfigKey = new Map<string, string>();
  for (const key of keys) {
    if (key === "config") continue;
    const long = longName(schema[key]);
    byConfigKey.set(long, key);
    byConfigKey.set(camel(long), key);
  }
  const fromConfig = new Map<string, unknown>();
  const configPath = given.config?.path ?? "";
  for (const [configKey, value] of Object.entries(given.config?.values ?? {})) {
    const key = byConfigKey.get(configKey);
    if (key === undefined) {
      const names = keys.filter((k) => k !== "config").map((k) => longName(schema[k]));
      throw new UsageError(
        `--config ${configPath}: unknown option "${configKey}" (options: ${names.join(", ")})`,
      );
    }
    if (fromConfig.has(key))
      throw new UsageError(`--config ${configPath}: "${configKey}" is given twice`);
    fromConfig.set(key, value);
  }
  const sources = new Map<string, Source>();
  const name = (key: string): string => {
    const long = longName(schema[key]);
    return sources.get(key) === "config" ? `--config ${configPath}: ${long}` : `--${long}`;
  };
  const options: Record<string, unknown> = {};
  for (const key of keys) {
    const flag = schema[key];
    if (given.cli.has(key)) {
      sources.set(key, "cli");
      options[key] = flag.parse(given.cli.get(key), name(key), "cli");
    } else if (fromConfig.has(key)) {
      sources.set(key, "config");
      const value = fromConfig.get(key);
      if (value === null || value === undefined) throw new UsageError(`${name(key)} has no value`);
      options[key] = flag.parse(value, name(key), "config");
    } else if (flag.absent === "required") {
      throw new UsageError(
        `required option ${flag.flags} not specified (as a flag or in a --config file)`,
      );
    } else {
      options[key] = flag.absent.value;
    }
  }
  // the one cast: every key of the schema was set above, to its flag's parsed or absent value
  return { options: options as Options<S>, name };
}

/** givenOf + parseGiven: the typed options of a parsed command. */
export function parseCommand<S extends Schema>(command: Command, schema: S): Parsed<S> {
  return parseGiven(schema, givenOf(command, schema));
}
