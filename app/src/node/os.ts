// node:os for the browser build (app/vite.config.ts aliases it here).

export function availableParallelism(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

export function hostname(): string {
  return "browser";
}
