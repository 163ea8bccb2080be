// Helpers of the browser tests (test/app/*.test.ts): a static file server with the cross-origin
// isolation headers that records the paths it serves, headless Debian Chromium driven by
// puppeteer-core (no browser download), and a recorder of a page's requests. Chromium is /usr/bin/chromium or $CHROMIUM. Without it
// the browser tests are skipped on a workstation and FAIL under CI (CI set), which installs it
// (.ci/run), so a CI run never silently skips them.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { test } from "vitest";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const HAS_CHROMIUM = existsSync(CHROMIUM);

/** Under CI a missing Chromium is a failure; elsewhere the browser tests are skipped. */
export function requireChromium(): void {
  test.runIf(process.env.CI !== undefined)("CI: Chromium is installed", () => {
    if (!HAS_CHROMIUM) throw new Error(`no Chromium at ${CHROMIUM} (.ci/run installs it with apt)`);
  });
}

const TYPES: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".map": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

export interface StaticServer {
  origin: string;
  /** Paths of every request this server answered. */
  served: string[];
  close(): Promise<void>;
}

/** Answers one path of a test server (a test page, a POST endpoint). */
export type Route = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Serves the files under `root` (with the isolation headers unless `isolated` is false); `routes`
 * answer given paths first (e.g. a test page, a POST endpoint).
 */
export async function serveStatic(
  root: string,
  options: {
    isolated?: boolean;
    routes?: Record<string, Route>;
  } = {},
): Promise<StaticServer> {
  const headers = options.isolated === false ? {} : ISOLATION_HEADERS;
  const served: string[] = [];
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    served.push(path);
    const route = options.routes?.[path];
    if (route !== undefined) {
      route(req, res);
      return;
    }
    const file = join(root, path.endsWith("/") ? `${path}index.html` : path);
    try {
      const body = await readFile(file);
      const type = TYPES[extname(file)] ?? "application/octet-stream";
      res.writeHead(200, { ...headers, "Content-Type": type }).end(body);
    } catch {
      res.writeHead(404, headers).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Headless Chromium that resolves no host name but loopback ones (nothing of a test run can reach
 * the network, whatever asks), with its own background traffic switched off. `webgpu`: with
 * navigator.gpu, which needs only --enable-unsafe-webgpu in headless Chromium on Linux; its adapter
 * is then SwiftShader, Chromium's own CPU Vulkan (docs/engine-notes.md, "WebGPU in Chromium").
 */
export async function launchChromium(options: { webgpu?: boolean } = {}): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      ...(options.webgpu === true ? ["--enable-unsafe-webgpu"] : []),
      "--disable-dev-shm-usage",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
}

/**
 * Records the URL of every request of `page` and its workers (puppeteer reports a dedicated
 * worker's fetches as the page's), with the page's Content-Security-Policy bypassed so that what
 * the code itself asks for is seen, not only what the policy lets through.
 */
export async function recordRequests(page: Page): Promise<string[]> {
  const urls: string[] = [];
  await page.setBypassCSP(true);
  page.on("request", (request) => {
    urls.push(request.url());
  });
  return urls;
}
