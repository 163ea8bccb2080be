// A run directory belongs to one process: <dir>/.loraga.lock holds {"pid", "host", "started"} of
// the process that trains in it.
//
// acquireRunLock(dir) creates the lock atomically (written to a temp file, then hard-linked to the
// lock name, which fails if the name exists, so no reader ever sees half a lock). When a lock is
// already there it is stale only if it names this host and a process that no longer runs (kill(pid,
// 0) answers ESRCH); a stale lock is replaced, any other lock is an error naming the holder. PIDs
// can be reused, and a lock from another host cannot be checked: both count as held, and the
// message says which file to delete if the user knows better. Two processes replacing the same
// stale lock at the same instant can both believe they hold it (a narrow window this accepts).
// release() removes the lock if it is still this process's; the lock is also removed when the
// process exits (process.on("exit")), so an exit on a second Ctrl-C leaves no lock behind.

import { randomBytes } from "node:crypto";
import { readFileSync, unlinkSync } from "node:fs";
import { link, readFile, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { isAlive } from "./process-alive.js";

export const RUN_LOCK_NAME = ".loraga.lock";

interface RunLockInfo {
  pid: number;
  host: string;
  started: string;
}

export interface RunLock {
  readonly path: string;
  release(): Promise<void>;
}

class RunLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunLockedError";
  }
}

function parseLock(text: string): RunLockInfo | null {
  try {
    const v = JSON.parse(text) as Partial<RunLockInfo>;
    if (typeof v.pid === "number" && Number.isSafeInteger(v.pid) && typeof v.host === "string")
      return { pid: v.pid, host: v.host, started: String(v.started ?? "") };
  } catch {
    // unreadable: reported by the caller
  }
  return null;
}

/** Takes the lock of run directory `dir` (which must exist); throws RunLockedError when held. */
export async function acquireRunLock(dir: string): Promise<RunLock> {
  const path = join(dir, RUN_LOCK_NAME);
  const me: RunLockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  const temp = join(dir, `${RUN_LOCK_NAME}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  await writeFile(temp, `${JSON.stringify(me)}\n`, { flag: "wx" });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(temp, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const text = await readFile(path, "utf8").catch(() => "");
      const holder = parseLock(text);
      if (holder === null) {
        throw new RunLockedError(
          `${dir} is locked by ${path}, which is unreadable; delete it if no loraga process uses ${dir}`,
        );
      }
      if (holder.host !== me.host || isAlive(holder.pid) || attempt > 1) {
        throw new RunLockedError(
          `${dir} is in use by process ${holder.pid} on ${holder.host} (since ${holder.started}); ` +
            `wait for it to finish, or delete ${path} if that process is gone`,
        );
      }
      await unlink(path).catch(() => undefined); // stale: its process is gone
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  const onExit = () => {
    try {
      if (parseLock(readFileSync(path, "utf8"))?.pid === process.pid) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  process.on("exit", onExit);
  return {
    path,
    release: async () => {
      process.removeListener("exit", onExit);
      onExit();
    },
  };
}
