// node:path for the browser build (app/vite.config.ts aliases it here): the POSIX functions the
// library calls, over the in-memory file system's absolute paths (vfs.ts). The working directory
// is "/".

export const sep = "/";

export function normalize(path: string): string {
  const absolute = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  return absolute ? `/${joined}` : joined === "" ? "." : joined;
}

export function join(...parts: string[]): string {
  return normalize(parts.filter((p) => p !== "").join("/"));
}

export function resolve(...parts: string[]): string {
  let path = "/";
  for (const part of parts) path = part.startsWith("/") ? part : `${path}/${part}`;
  return normalize(path);
}

export function dirname(path: string): string {
  const p = normalize(path);
  const at = p.lastIndexOf("/");
  if (at < 0) return ".";
  return at === 0 ? "/" : p.slice(0, at);
}

export function basename(path: string, suffix?: string): string {
  const name = normalize(path).split("/").pop() ?? "";
  return suffix !== undefined && name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
}

export function extname(path: string): string {
  const name = basename(path);
  const at = name.lastIndexOf(".");
  return at <= 0 ? "" : name.slice(at);
}

export function isAbsolute(path: string): boolean {
  return path.startsWith("/");
}

export function relative(from: string, to: string): string {
  const a = resolve(from).split("/").filter(Boolean);
  const b = resolve(to).split("/").filter(Boolean);
  let same = 0;
  while (same < a.length && same < b.length && a[same] === b[same]) same++;
  return [...a.slice(same).map(() => ".."), ...b.slice(same)].join("/");
}
