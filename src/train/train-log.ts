// Resume support for the trainer's JSONL log (records: trainer.ts header): before a resumed run
// appends, the log is cut back to the checkpoint's step, so it holds each step once.
//
// truncateTrainLog(path, step) keeps, in order, every record whose "step" is <= step (train and
// eval records of the completed steps; the trainer logs a step's eval before its checkpoint) and
// drops the rest: records of steps the killed process ran after its checkpoint, and a last line
// cut short by the kill (not valid JSON). Lines that are valid JSON but carry no numeric step are
// kept. The file is rewritten atomically; a missing file is left missing.

import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../io/atomic-write.js";

/** Cuts the log at `path` back to the records of steps <= `step` (see the file header). */
export async function truncateTrainLog(path: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  const kept: string[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      continue; // a line cut short by a kill
    }
    const s = (record as { step?: unknown } | null)?.step;
    if (typeof s === "number" && s > step) continue;
    kept.push(line);
  }
  const next = kept.length === 0 ? "" : `${kept.join("\n")}\n`;
  if (next !== text) await writeFileAtomic(path, next);
}
