// The two Node globals the library touches in the browser, defined by installNodeGlobals() before
// the worker runs any library code (a function, not an import side effect: the package declares
// itself free of side effects, so a bundler may drop a module that only has them): `process.pid` (temporary file names in io/atomic-write.ts) and `Buffer.concat` /
// `Buffer.alloc` (line splitting in data/jsonl.ts), as minimal Uint8Array versions. `process` has no
// `versions.node`, so platform/threads.ts still takes its browser path.

export function installNodeGlobals(): void {
  const g = globalThis as { process?: unknown; Buffer?: unknown };
  g.process ??= { pid: 1, env: {} };
  g.Buffer ??= {
    alloc: (size: number) => new Uint8Array(size),
    concat(list: readonly Uint8Array[]): Uint8Array {
      const out = new Uint8Array(list.reduce((n, part) => n + part.length, 0));
      let at = 0;
      for (const part of list) {
        out.set(part, at);
        at += part.length;
      }
      return out;
    },
  };
}
