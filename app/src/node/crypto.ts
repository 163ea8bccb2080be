// node:crypto for the browser build (app/vite.config.ts aliases it here): randomBytes, which the
// library uses for temporary file names, from the Web Crypto API.

export function randomBytes(count: number): { toString(encoding: "hex"): string } {
  const bytes = crypto.getRandomValues(new Uint8Array(count));
  return { toString: () => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") };
}
