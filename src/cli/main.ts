#!/usr/bin/env node
// The `loraga` command: parses the subcommand, runs it, and turns any failure into one line on
// stderr and a non-zero exit code (2 for usage errors, 130/143 for a run stopped by SIGINT/SIGTERM
// after saving, 1 for everything else). Subcommands live in cli/commands/, one file each,
// registered in COMMANDS.

import { Command, CommanderError } from "commander";
import { COMMANDS } from "./commands/index.js";
import { UsageError } from "./config-file.js";
import { InterruptedError } from "./interrupt.js";

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command("loraga")
    .description("Fine-tune language models with LoRA and LoRA-GA, in TypeScript.")
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();
  program.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const register of COMMANDS) register(program);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit cleanly; commander already printed the usage error
      return err.exitCode === 0 || err.code === "commander.helpDisplayed" ? 0 : 2;
    }
    if (err instanceof InterruptedError) {
      process.stderr.write(`loraga: ${err.message}\n`);
      return err.exitCode; // 130 (SIGINT) or 143 (SIGTERM), after saving
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`loraga: error: ${message}\n`);
    if (process.env.LORAGA_DEBUG && err instanceof Error && err.stack)
      process.stderr.write(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`loraga: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
