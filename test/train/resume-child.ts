// Child process of test/train/checkpoint-resume.test.ts (compiled there with tsc, then run with
// node): trains the resumable run, logging every step to a JSONL file and sleeping 150 ms after each
// step so that the parent can SIGKILL it mid-run.
// Usage: node resume-child.js <checkpointDir> <logFile>

import { createKernels } from "../../src/kernels/index.js";
import { Heap } from "../../src/tensor/heap.js";
import { runResumable } from "./resume-setup.js";

const [checkpointDir, logFile] = process.argv.slice(2);
if (checkpointDir === undefined || logFile === undefined)
  throw new Error("usage: resume-child.js <checkpointDir> <logFile>");
const kernels = await createKernels("ref", { heap: new Heap({ initialBytes: 16 * 2 ** 20 }) });
const sleeper = new Int32Array(new SharedArrayBuffer(4));
await runResumable(kernels, {
  checkpointDir,
  logFile,
  onStep: () => {
    Atomics.wait(sleeper, 0, 0, 150);
  },
});
await kernels.dispose();
