// Opening a model folder and a data file: the File System Access API's directory picker where the
// browser has it, a folder <input webkitdirectory> otherwise; only the folder's top-level files
// are kept (config.json, safetensors, tokenizer files), as a Hugging Face model directory has them.

import type { ModelSource } from "../protocol.js";

type FolderSource = Extract<ModelSource, { kind: "files" }>;

interface DirectoryHandle {
  name: string;
  values(): AsyncIterable<{
    kind: "file" | "directory";
    name: string;
    getFile?: () => Promise<File>;
  }>;
}

type Picker = (options?: { mode?: "read" | "readwrite" }) => Promise<DirectoryHandle>;

export function directoryPicker(): Picker | null {
  const picker = (window as { showDirectoryPicker?: Picker }).showDirectoryPicker;
  return typeof picker === "function" ? picker.bind(window) : null;
}

/** The model folder chosen with the directory picker. */
export async function pickModelFolder(picker: Picker): Promise<FolderSource> {
  const dir = await picker({ mode: "read" });
  const files: { path: string; file: File }[] = [];
  for await (const entry of dir.values()) {
    if (entry.kind === "file" && entry.getFile !== undefined)
      files.push({ path: entry.name, file: await entry.getFile() });
  }
  return { kind: "files", name: dir.name, files };
}

/** The model folder chosen with <input type="file" webkitdirectory>. */
export function modelFolderFromInput(list: FileList): FolderSource | null {
  const files: { path: string; file: File }[] = [];
  let name = "";
  for (const file of Array.from(list)) {
    const parts = file.webkitRelativePath.split("/");
    name = parts[0] ?? name;
    if (parts.length === 2) files.push({ path: parts[1], file });
  }
  return name === "" ? null : { kind: "files", name, files };
}

/** Writes `files` (paths relative to the chosen folder) into a folder the person picks. */
export async function saveToFolder(
  picker: Picker,
  files: readonly { path: string; blob: Blob }[],
): Promise<string> {
  type Writable = { write(data: Blob): Promise<void>; close(): Promise<void> };
  type Dir = {
    name: string;
    getDirectoryHandle(name: string, o: { create: boolean }): Promise<Dir>;
    getFileHandle(
      name: string,
      o: { create: boolean },
    ): Promise<{ createWritable(): Promise<Writable> }>;
  };
  const root = (await picker({ mode: "readwrite" })) as unknown as Dir;
  for (const { path, blob } of files) {
    const parts = path.split("/");
    let dir = root;
    for (const part of parts.slice(0, -1))
      dir = await dir.getDirectoryHandle(part, { create: true });
    const writable = await (
      await dir.getFileHandle(parts[parts.length - 1], { create: true })
    ).createWritable();
    await writable.write(blob);
    await writable.close();
  }
  return root.name;
}
