// Platform glue for threads: the one place that knows how a worker is started and how many cores
// there are. Kernel code talks to the small `PlatformWorker` interface only, so the same engine
// runs on Node (worker_threads, see node.ts) and in a browser (Web Workers from a Blob URL).
//
// Worker source contract: the script passed to spawnWorker runs with a global `port` object:
//   port.on(handler)  registers handler(message) for messages from the parent;
//   port.post(msg)    sends a structured-clonable message (WebAssembly.Module and shared
//                     WebAssembly.Memory included) to the parent.

/** A started worker, seen from the thread that started it. */
export interface PlatformWorker {
  post(message: unknown): void;
  /** Registers a handler for messages from the worker. */
  onMessage(handler: (message: unknown) => void): void;
  /** Registers a handler for an uncaught error in the worker. */
  onError(handler: (error: Error) => void): void;
  terminate(): Promise<void>;
}

/** Lines that define `port` inside a Web Worker. */
const BROWSER_PRELUDE =
  "const port = { on: (h) => { self.onmessage = (e) => h(e.data); }, post: (m) => self.postMessage(m) };\n";

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === "string";
}

/** Starts a worker running `source` (plain JavaScript, see the contract above). */
export async function spawnWorker(source: string): Promise<PlatformWorker> {
  if (isNode()) {
    const node = await import("./node.js");
    return node.spawnNodeWorker(source);
  }
  const url = URL.createObjectURL(
    new Blob([BROWSER_PRELUDE + source], { type: "text/javascript" }),
  );
  const worker = new Worker(url);
  return {
    post: (m) => worker.postMessage(m),
    onMessage: (h) => worker.addEventListener("message", (e) => h(e.data)),
    onError: (h) => worker.addEventListener("error", (e) => h(new Error(e.message))),
    terminate: async () => {
      worker.terminate();
      URL.revokeObjectURL(url);
    },
  };
}

/** Number of logical cores available to this process (>= 1). */
export async function cpuCount(): Promise<number> {
  if (isNode()) {
    const node = await import("./node.js");
    return node.nodeCpuCount();
  }
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator
    ?.hardwareConcurrency;
  return typeof n === "number" && n >= 1 ? n : 1;
}
