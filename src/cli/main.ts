#!/usr/bin/env node
// The `loraga` command: runs the program (program.ts) on the process's arguments and sets the exit
// code. Subcommands live in cli/commands/, one file each, registered in COMMANDS.

import { runProgram } from "./program.js";

runProgram(process.argv.slice(2), {}, { debug: Boolean(process.env.LORAGA_DEBUG) }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`loraga: internal error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
