// The Node-only modules the library names but never runs in a browser (node:worker_threads,
// node:module, node:url; the CLI's commander and cli-progress), for the browser build:
// app/vite.config.ts aliases them here. Every export throws when used.

function unavailable(what: string): never {
  throw new Error(`${what} is not available in the browser`);
}

export class Worker {
  constructor() {
    unavailable("node:worker_threads");
  }
}
export const parentPort = null;
export const createRequire = () => unavailable("node:module");
export const fileURLToPath = () => unavailable("node:url");
export const pathToFileURL = () => unavailable("node:url");
export class Option {
  constructor() {
    unavailable("commander");
  }
}
export class Command extends Option {}
export default {};
