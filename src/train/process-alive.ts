// Whether a process runs, by its PID: for the run lock (run-lock.ts) and for clearing a dead
// writer's temp checkpoints (checkpoint.ts). Imports nothing, so that the modules a browser page
// loads (trainer.ts -> checkpoint.ts) need no Node built-in beyond the ones they already use.

/** Whether a process with this PID runs on this host (EPERM: it runs, as another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
