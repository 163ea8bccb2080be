// How the host cuts a row or elementwise job into chunks for the pool, shared by the families
// (the GEMM has its own blocking, families/gemm/host.ts). Chunks are claimed one at a time, so
// they are small enough to balance the threads and large enough that claiming one is noise.

/** Elementwise jobs: floats per chunk; row jobs: about this many (whole rows, at least one). */
export const CHUNK_ELEMS = 16384;
/** Below this many elements a job runs on the calling thread only (waking workers costs more). */
const PARALLEL_MIN_ELEMS = 65536;

/** Rows per chunk for rows of `rowElems` floats: about CHUNK_ELEMS floats, at least one row. */
export function rowsPerChunk(rowElems: number): number {
  return Math.max(1, Math.floor(CHUNK_ELEMS / rowElems));
}

/** Threads for a job over `elems` elements: one below PARALLEL_MIN_ELEMS, else all of them. */
export function threadsFor(elems: number, threads: number): number {
  return elems < PARALLEL_MIN_ELEMS ? 1 : threads;
}
