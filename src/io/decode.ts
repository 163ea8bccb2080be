// Strict UTF-8 decoding of user text files (data, configs): an invalid byte sequence is an error
// naming FILE:LINE, never a silent U+FFFD or a dropped byte.
//
// decodeUtf8(bytes, file, firstLine) decodes with TextDecoder({ fatal: true }); on failure it
// finds the first ill-formed sequence (Unicode 15, §3.9, Table 3-7 "Well-Formed UTF-8 Byte
// Sequences") and throws Utf8Error "FILE:LINE: invalid UTF-8 (byte 0xFF at column C)", where LINE
// counts "\n" from firstLine and C is the 1-based byte column. A leading byte-order mark is
// dropped only when firstLine is 1 (the start of the file).

export class Utf8Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Utf8Error";
  }
}

/** Byte offset of the first ill-formed UTF-8 sequence in `bytes`, or -1 when all is well-formed. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    // second-byte range and sequence length by lead byte (Table 3-7)
    let lo = 0x80;
    let hi = 0xbf;
    let len: number;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + len > n) return i;
    if (bytes[i + 1] < lo || bytes[i + 1] > hi) return i;
    for (let k = 2; k < len; k++) if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return i;
    i += len;
  }
  return -1;
}

/** Decodes `bytes` strictly (see the file header). */
export function decodeUtf8(bytes: Uint8Array, file: string, firstLine = 1): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: firstLine !== 1 }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = firstLine;
    let lineStart = 0;
    for (let i = 0; i < Math.max(0, at); i++) {
      if (bytes[i] === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    const byte = at < 0 ? "" : `byte 0x${bytes[at].toString(16).padStart(2, "0").toUpperCase()} `;
    throw new Utf8Error(
      `${file}:${line}: invalid UTF-8 (${byte}at column ${Math.max(0, at) - lineStart + 1})`,
    );
  }
}
