// Registry of subcommands: each entry adds one subcommand (with its --help text) to the program.
import type { Command } from "commander";

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: RegisterCommand[] = [];
