// Node.js implementation of the platform thread glue (threads.ts): worker_threads with an
// evaluated source string, and os.availableParallelism() for the core count.

import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { PlatformWorker } from "./threads.js";

/** Lines that define `port` inside an eval'd worker_threads script (CommonJS context). */
const NODE_PRELUDE =
  "const port = (() => { const { parentPort } = require('node:worker_threads');\n" +
  "  return { on: (h) => parentPort.on('message', h), post: (m) => parentPort.postMessage(m) }; })();\n";

export function spawnNodeWorker(source: string): PlatformWorker {
  const worker = new Worker(NODE_PRELUDE + source, { eval: true });
  // a worker spinning on shared memory must not keep the process alive once the caller is done
  worker.unref();
  return {
    post: (m) => worker.postMessage(m),
    onMessage: (h) => worker.on("message", h),
    onError: (h) => worker.on("error", h),
    terminate: async () => {
      await worker.terminate();
    },
  };
}

export function nodeCpuCount(): number {
  return Math.max(1, availableParallelism());
}
