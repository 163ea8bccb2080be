// A run directory belongs to one process: the lock names its holder, a stale lock (dead PID on
// this host) is replaced, and release / process exit remove it.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { acquireRunLock, RUN_LOCK_NAME } from "../../src/train/run-lock.js";
import { tempDir } from "../helpers/cli.js";

/** The PID of a process that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ["-e", ""]).pid as number;
}

describe("run lock", () => {
  test("a second acquire is refused naming the holder; release frees the directory", async () => {
    const dir = tempDir();
    const lock = await acquireRunLock(dir);
    const info = JSON.parse(readFileSync(join(dir, RUN_LOCK_NAME), "utf8"));
    expect(info.pid).toBe(process.pid);
    expect(info.host).toBe(hostname());
    await expect(acquireRunLock(dir)).rejects.toThrow(
      `${dir} is in use by process ${process.pid} on ${hostname()}`,
    );
    await lock.release();
    expect(readdirSync(dir)).toEqual([]);
    await (await acquireRunLock(dir)).release();
  });

  test("a lock of a dead process on this host is stale and replaced", async () => {
    const dir = tempDir();
    const pid = deadPid();
    writeFileSync(join(dir, RUN_LOCK_NAME), JSON.stringify({ pid, host: hostname(), started: "" }));
    const lock = await acquireRunLock(dir);
    expect(JSON.parse(readFileSync(join(dir, RUN_LOCK_NAME), "utf8")).pid).toBe(process.pid);
    await lock.release();
  });

  test("a lock from another host cannot be checked and counts as held", async () => {
    const dir = tempDir();
    const other = { pid: deadPid(), host: `${hostname()}-elsewhere`, started: "x" };
    writeFileSync(join(dir, RUN_LOCK_NAME), JSON.stringify(other));
    await expect(acquireRunLock(dir)).rejects.toThrow(
      `in use by process ${other.pid} on ${other.host}`,
    );
  });

  test("an unreadable lock file is an error naming it", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, RUN_LOCK_NAME), "garbage");
    await expect(acquireRunLock(dir)).rejects.toThrow(
      `${join(dir, RUN_LOCK_NAME)}, which is unreadable`,
    );
  });

  test("the lock is removed when the process exits without releasing it", () => {
    const dir = tempDir();
    const r = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { acquireRunLock } from "./dist/train/run-lock.js";
         await acquireRunLock(${JSON.stringify(dir)}); process.exit(3);`,
      ],
      { encoding: "utf8" },
    );
    expect(r.status).toBe(3);
    expect(existsSync(join(dir, RUN_LOCK_NAME))).toBe(false);
  });
});
