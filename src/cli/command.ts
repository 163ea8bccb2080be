// A subcommand as data: its flags (one schema, options/schema.ts, in --help order), a check that
// turns the parsed options into what the run needs — validating every flag and every combination,
// reading but never writing files — and the run. Registration builds the commander command; with
// dryRun the action stops after the check (the in-process validation tests use it).

import type { Command } from "commander";
import { addFlags, type Parsed, parseCommand, type Schema } from "./options/schema.js";

export interface CommandSpec<S extends Schema, P> {
  readonly name: string;
  readonly description: string;
  readonly schema: S;
  /** A positional argument: commander's syntax ("<run-dirs...>") and its help. */
  readonly argument?: { readonly syntax: string; readonly help: string };
  /** --help text after the options (examples). */
  readonly helpAfter: string;
  /** Validates everything checkable before the run; throws UsageError naming the flag. */
  check(parsed: Parsed<S>, args: readonly string[]): P;
  run(plan: P): Promise<void>;
}

export interface RegisterMode {
  /** Parse and check only: nothing runs, nothing is written. */
  readonly dryRun?: boolean;
}

/** What the program registers: a subcommand's name and how to add it. */
export interface RegisterCommand {
  readonly name: string;
  register(program: Command, mode?: RegisterMode): void;
}

export function commandOf<S extends Schema, P>(spec: CommandSpec<S, P>): RegisterCommand {
  const register = (program: Command, mode: RegisterMode = {}): void => {
    const command = program.command(spec.name).description(spec.description);
    if (spec.argument !== undefined) command.argument(spec.argument.syntax, spec.argument.help);
    addFlags(command, spec.schema);
    command.addHelpText("after", spec.helpAfter);
    command.action(async () => {
      const plan = spec.check(parseCommand(command, spec.schema), command.args);
      if (mode.dryRun !== true) await spec.run(plan);
    });
  };
  return { name: spec.name, register };
}
