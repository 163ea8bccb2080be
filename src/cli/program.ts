// The `loraga` program: parses the subcommand and its options, runs it, and turns any failure into
// one line on stderr, `loraga: error: ...` — commander's own errors (an unknown flag, a missing
// argument) included — and an exit code: 0 on success, 2 for usage errors, 130/143 for a run
// stopped by SIGINT/SIGTERM after saving (interrupt.ts), 1 for anything else.

import { Command, CommanderError } from "commander";
import type { RegisterMode } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { UsageError } from "./errors.js";
import { InterruptedError } from "./interrupt.js";

export interface ProgramIo {
  /** Where errors (and commander's usage hints) go; default: process.stderr. */
  readonly writeErr?: (text: string) => void;
  /** Print the stack of errors too (LORAGA_DEBUG). */
  readonly debug?: boolean;
}

export interface ProgramMode extends RegisterMode {
  /** Register only this subcommand (fast in-process tests); default: all. */
  readonly only?: string;
}

/** The program with every subcommand; with dryRun, commands stop after checking their options. */
export function buildProgram(mode: ProgramMode = {}, io: ProgramIo = {}): Command {
  const writeErr = io.writeErr ?? ((s: string) => process.stderr.write(s));
  const program = new Command("loraga")
    .description("Fine-tune language models with LoRA and LoRA-GA, in TypeScript.")
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();
  program.configureOutput({
    writeErr,
    // commander's messages read "error: ..."; ours all start "loraga: error: "
    outputError: (text, write) =>
      write(text.startsWith("error: ") ? `loraga: ${text}` : `loraga: error: ${text}`),
  });
  for (const command of COMMANDS) {
    if (mode.only === undefined || mode.only === command.name) command.register(program, mode);
  }
  return program;
}

/** Runs `loraga ARGV...`; returns the exit code. */
export function runProgram(
  argv: readonly string[],
  mode: ProgramMode = {},
  io: ProgramIo = {},
): Promise<number> {
  return runOn(buildProgram(mode, io), argv, io);
}

/** Parses and runs `argv` on a built program (commander allows parsing again); the exit code. */
export async function runOn(
  program: Command,
  argv: readonly string[],
  io: ProgramIo = {},
): Promise<number> {
  const writeErr = io.writeErr ?? ((s: string) => process.stderr.write(s));
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit cleanly; commander already printed the usage error
      return err.exitCode === 0 || err.code === "commander.helpDisplayed" ? 0 : 2;
    }
    if (err instanceof InterruptedError) {
      writeErr(`loraga: ${err.message}\n`);
      return err.exitCode; // 130 (SIGINT) or 143 (SIGTERM), after saving
    }
    const message = err instanceof Error ? err.message : String(err);
    writeErr(`loraga: error: ${message}\n`);
    if (io.debug === true && err instanceof Error && err.stack) writeErr(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
