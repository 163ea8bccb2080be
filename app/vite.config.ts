// Vite build of the web app (npm run app:build -> app/dist, plain static files). The library is
// bundled from its TypeScript sources; its Node built-ins are aliased to app/src/node/ (an
// in-memory file system and small stand-ins), and the CLI-only packages it names to stubs that
// throw. The demo model (demo/model) is copied next to the page as demo-model/. `npm run app`
// serves the build with the cross-origin isolation headers the wasm threads need.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const node = (file: string) => join(here, "src", "node", file);

/** COOP + COEP: what makes the page cross-origin isolated (SharedArrayBuffer, wasm threads). */
export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

/** Emits demo/model/* as demo-model/* in the build. */
function demoModel(): Plugin {
  const source = join(here, "..", "demo", "model");
  return {
    name: "loraga-demo-model",
    generateBundle() {
      for (const name of readdirSync(source)) {
        if (name === "README.md") continue;
        this.emitFile({
          type: "asset",
          fileName: `demo-model/${name}`,
          source: readFileSync(join(source, name)),
        });
      }
    },
  };
}

export default defineConfig({
  root: here,
  base: "./",
  plugins: [demoModel()],
  resolve: {
    alias: [
      { find: /^node:fs\/promises$/, replacement: node("fs-promises.ts") },
      { find: /^node:fs$/, replacement: node("fs.ts") },
      { find: /^node:path$/, replacement: node("path.ts") },
      { find: /^node:crypto$/, replacement: node("crypto.ts") },
      { find: /^node:os$/, replacement: node("os.ts") },
      {
        find: /^(node:worker_threads|node:module|node:url|commander|cli-progress)$/,
        replacement: node("unavailable.ts"),
      },
    ],
  },
  worker: { format: "es" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 4096,
  },
  server: { headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
});
