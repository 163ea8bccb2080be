// Seedable pseudo-random numbers, bit-identical on every platform and JS engine.
//
// Contract:
// - The generator is xoshiro128** (Blackman & Vigna, "Scrambled linear pseudorandom number
//   generators", 2018; https://prng.di.unimi.it/) in 32-bit integer arithmetic (Math.imul, >>>).
// - Seeds go through a splitmix-style hash (a Weyl sequence finalised by MurmurHash3's fmix32),
//   so nearby seeds give unrelated streams and the all-zero state cannot occur.
// - normal() uses Marsaglia's polar method with a natural logarithm written here in plain IEEE
//   arithmetic (`deterministicLog`), because Math.log is not required to be correctly rounded and
//   may differ between engines. sqrt is correctly rounded by IEEE 754, so it is safe.
// - state()/fromState() capture everything, including the cached second normal, so a resumed
//   generator continues the exact same sequence.
// - No global state: every consumer is handed its Rng explicitly.

const TWO_POW_32 = 4294967296;
const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;
const GOLDEN_GAMMA = 0x9e3779b9;

/** MurmurHash3's 32-bit finaliser (avalanches every input bit). */
function fmix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

const LN2 = Math.LN2;
const SQRT_HALF = Math.SQRT1_2;
const exponentView = new DataView(new ArrayBuffer(8));

/**
 * ln(x) for finite x > 0 using only +, -, *, / (so every engine gets the same bits).
 * x = f * 2^e with f in [sqrt(1/2), sqrt(2)); ln x = e ln 2 + 2 atanh(s), s = (f - 1)/(f + 1),
 * |s| <= 0.1716, atanh by its Taylor series s + s^3/3 + s^5/5 + ... (truncation < 1e-19).
 */
export function deterministicLog(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) {
    throw new RangeError(`deterministicLog: argument must be finite and > 0, got ${x}`);
  }
  let scaled = x;
  let e = 0;
  if (scaled < 2.2250738585072014e-308) {
    // subnormal: bring into the normal range first
    scaled *= TWO_POW_53;
    e -= 53;
  }
  exponentView.setFloat64(0, scaled);
  const hi = exponentView.getUint32(0);
  e += ((hi >>> 20) & 0x7ff) - 1023;
  exponentView.setUint32(0, (hi & 0x800fffff) | (1023 << 20)); // mantissa in [1, 2)
  let f = exponentView.getFloat64(0);
  if (f >= 2 * SQRT_HALF) {
    f *= 0.5;
    e += 1;
  }
  const s = (f - 1) / (f + 1);
  const s2 = s * s;
  let term = s;
  let sum = s;
  for (let k = 3; k <= 23; k += 2) {
    term *= s2;
    sum += term / k;
  }
  return e * LN2 + 2 * sum;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  /** Marsaglia's polar method makes normals in pairs; the second waits here. */
  private hasSpare = false;
  private spare = 0;

  /** Seeds from any safe integer (negative values and values >= 2^32 use all their bits). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`Rng: seed must be a safe integer, got ${seed}`);
    }
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    let weyl = (lo ^ fmix32(hi + 0x6a09e667)) >>> 0;
    const next = (): number => {
      weyl = (weyl + GOLDEN_GAMMA) >>> 0;
      return fmix32(weyl);
    };
    this.setWords(next(), next(), next(), next());
  }

  /** Next 32 random bits as an integer in [0, 2^32). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * TWO_POW_26 + b) / TWO_POW_53;
  }

  /** Uniform integer in [0, n), unbiased (rejection of the short last block), 1 <= n <= 2^32. */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new RangeError(`Rng.below: n must be an integer in [1, 2^32], got ${n}`);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** Standard normal N(0, 1) (Marsaglia & Bray 1964, polar method). */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    let u = 0;
    let v = 0;
    let s = 0;
    do {
      u = 2 * this.uniform() - 1;
      v = 2 * this.uniform() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const factor = Math.sqrt((-2 * deterministicLog(s)) / s);
    this.spare = v * factor;
    this.hasSpare = true;
    return u * factor;
  }

  /** out[i] = lo + (hi - lo) * uniform(). (Rounding to float32 can land on hi itself.) */
  fillUniform(out: Float32Array | Float64Array, lo: number, hi: number): void {
    const width = hi - lo;
    for (let i = 0; i < out.length; i++) out[i] = lo + width * this.uniform();
  }

  /** out[i] = mean + std * normal(). */
  fillNormal(out: Float32Array | Float64Array, mean: number, std: number): void {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
  }

  /** Shuffles `array` in place (Fisher–Yates / Durstenfeld) and returns it. */
  shuffle<T>(array: T[]): T[] {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /**
   * A new generator for an independent stream: seeded by hashing four outputs of this one (this
   * generator advances by four draws). Deterministic: the same parent state forks the same child.
   */
  fork(): Rng {
    const child = Object.create(Rng.prototype) as Rng;
    child.hasSpare = false;
    child.spare = 0;
    child.setWords(
      fmix32(this.nextU32() ^ 0x243f6a88),
      fmix32(this.nextU32() ^ 0x85a308d3),
      fmix32(this.nextU32() ^ 0x13198a2e),
      fmix32(this.nextU32() ^ 0x03707344),
    );
    return child;
  }

  /** Everything needed to resume: [s0, s1, s2, s3, hasSpare (0|1), spare]. JSON-safe. */
  state(): number[] {
    return [this.s0, this.s1, this.s2, this.s3, this.hasSpare ? 1 : 0, this.spare];
  }

  /** Rebuilds a generator from state(); throws on anything that state() cannot have produced. */
  static fromState(s: readonly number[]): Rng {
    const rng = Object.create(Rng.prototype) as Rng;
    rng.setState(s);
    return rng;
  }

  /** Restores a state() snapshot into this generator (for holders of the instance, e.g. adapters). */
  setState(s: readonly number[]): void {
    if (!Array.isArray(s) || s.length !== 6) {
      throw new Error(`Rng.setState: expected an array of 6 numbers, got ${JSON.stringify(s)}`);
    }
    for (let i = 0; i < 4; i++) {
      if (!Number.isInteger(s[i]) || s[i] < 0 || s[i] >= TWO_POW_32) {
        throw new Error(`Rng.setState: word ${i} must be a 32-bit unsigned integer, got ${s[i]}`);
      }
    }
    if ((s[0] | s[1] | s[2] | s[3]) === 0)
      throw new Error("Rng.setState: the all-zero state is invalid");
    if (s[4] !== 0 && s[4] !== 1)
      throw new Error(`Rng.setState: hasSpare must be 0 or 1, got ${s[4]}`);
    if (!Number.isFinite(s[5])) throw new Error(`Rng.setState: spare must be finite, got ${s[5]}`);
    this.s0 = s[0];
    this.s1 = s[1];
    this.s2 = s[2];
    this.s3 = s[3];
    this.hasSpare = s[4] === 1;
    this.spare = s[5];
  }

  private setWords(a: number, b: number, c: number, d: number): void {
    this.s0 = a >>> 0;
    this.s1 = b >>> 0;
    this.s2 = c >>> 0;
    this.s3 = d >>> 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }
}
