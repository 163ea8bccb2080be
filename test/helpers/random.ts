// Deterministic test inputs: uniform values in [-range, range) from a 32-bit LCG
// (Numerical Recipes' constants 1664525, 1013904223), seeded, identical on every run.

export function randomUniform(n: number, seed: number, range: number): Float32Array {
  let s = seed >>> 0;
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    v[i] = (s / 4294967296 - 0.5) * 2 * range;
  }
  return v;
}
