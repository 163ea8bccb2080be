// Reads a whole safetensors file (a CLI output, a fixture) into host arrays, every tensor widened
// to f32, for tests that compare files tensor by tensor.

import { SafetensorsFile } from "../../src/io/safetensors.js";

/** Every tensor of the file by name, as f32, and the header's __metadata__. */
export async function readTensorFile(
  path: string,
): Promise<{ tensors: Map<string, Float32Array>; metadata: Record<string, string> }> {
  const file = await SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, Float32Array>();
    for (const name of file.entries.keys()) tensors.set(name, await file.readF32(name));
    return { tensors, metadata: { ...file.metadata } };
  } finally {
    await file.close();
  }
}

/** Every tensor of the file by name, as f32. */
export async function readTensors(path: string): Promise<Map<string, Float32Array>> {
  return (await readTensorFile(path)).tensors;
}
