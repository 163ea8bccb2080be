// Helpers of the browser tests (test/app/*.test.ts): a static file server with the cross-origin
// isolation headers, which also records every request it gets and, acting as Chromium's proxy,
// every request that tried to leave the page's origin; and headless Debian Chromium driven by
// puppeteer-core (no browser download). Chromium is /usr/bin/chromium or $CHROMIUM. Without it
// the browser tests are skipped on a workstation and FAIL under CI (CI set), which installs it
// (.ci/run), so a CI run never silently skips them.

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
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
  /** Paths of every request this server answered as the page's origin. */
  served: string[];
  /** URLs Chromium tried to fetch from anywhere else (it uses this server as its proxy). */
  leftOrigin: string[];
  close(): Promise<void>;
}

/**
 * Serves the files under `root` (with the isolation headers unless `isolated` is false); `routes`
 * answer given paths first (e.g. a test page, a POST endpoint).
 */
export async function serveStatic(
  root: string,
  options: {
    isolated?: boolean;
    routes?: Record<string, (req: IncomingMessage, res: ServerResponse) => void>;
  } = {},
): Promise<StaticServer> {
  const headers = options.isolated === false ? {} : ISOLATION_HEADERS;
  const served: string[] = [];
  const leftOrigin: string[] = [];
  let origin = "";
  const server = createServer(async (req, res) => {
    const url = req.url ?? "/";
    // a proxy request names an absolute URL (or CONNECT host:port): it was bound elsewhere
    if (req.method === "CONNECT" || (/^[a-z]+:\/\//i.test(url) && !url.startsWith(origin))) {
      leftOrigin.push(req.method === "CONNECT" ? `https://${url}` : url);
      res.writeHead(403).end();
      return;
    }
    const path = normalize(decodeURIComponent(new URL(url, "http://x").pathname));
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
  server.on("connect", (req, socket) => {
    leftOrigin.push(`https://${req.url}`);
    socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    served,
    leftOrigin,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Headless Chromium whose every non-loopback request goes to `proxyOrigin` (the test server,
 * which records and refuses it), with Chromium's own background traffic switched off.
 */
export async function launchChromium(proxyOrigin: string): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      `--proxy-server=${proxyOrigin}`,
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-domain-reliability",
      "--disable-client-side-phishing-detection",
      "--disable-sync",
      "--no-pings",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-features=NetworkTimeServiceQuerying,AutofillServerCommunication,OptimizationHints,OptimizationGuideModelDownloading,MediaRouter,Translate,PrivacySandboxSettings4,SafeBrowsing",
    ],
  });
}
