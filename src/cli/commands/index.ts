// Registry of subcommands: each entry adds one subcommand (with its --help text) to the program.
import type { RegisterCommand } from "../command.js";
import { registerCompare } from "./compare.js";
import { registerConvert } from "./convert.js";
import { registerDemo } from "./demo.js";
import { registerEstimate } from "./estimate.js";
import { registerEval, registerGenerate } from "./eval-generate.js";
import { registerInit } from "./init.js";
import { registerMerge } from "./merge.js";
import { registerReduce } from "./reduce.js";
import { registerTrain } from "./train.js";

export const COMMANDS: readonly RegisterCommand[] = [
  registerEstimate,
  registerReduce,
  registerInit,
  registerConvert,
  registerMerge,
  registerTrain,
  registerEval,
  registerGenerate,
  registerCompare,
  registerDemo,
];
