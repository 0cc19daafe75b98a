// Stable string hash for consistent hashing: XXH32 (xxHash, 32-bit variant) over the UTF-8 bytes of a
// string. It is the published algorithm with no per-process seed, so a key maps to the same ring or
// Maglev slot in every worker, after every restart and on every courier build; the known-answer test
// in test/proxy/lb/hash.test.ts pins the outputs against the reference C library.
//
// Why XXH32 and not XXH64 (Envoy's choice): 64-bit multiplies in JS need BigInt or lane emulation and
// are several times slower; 32 bits are enough for rings of up to 8M entries (collisions only tie two
// virtual nodes) and for Maglev tables (< 5M slots).

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;

/** Keys longer than this are encoded into a one-off buffer instead of growing the shared one. */
const MAX_SCRATCH = 64 * 1024;
let scratch = new Uint8Array(256);

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function read32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

function round(acc: number, input: number): number {
  return Math.imul(rotl((acc + Math.imul(input, P2)) | 0, 13), P1);
}

/** XXH32 of the first `len` bytes of `b` (defaults to all of it). Returns an unsigned 32-bit integer. */
export function xxh32(b: Uint8Array, seed = 0, len = b.length): number {
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const limit = len - 16;
    do {
      v1 = round(v1, read32(b, i));
      v2 = round(v2, read32(b, i + 4));
      v3 = round(v3, read32(b, i + 8));
      v4 = round(v4, read32(b, i + 12));
      i += 16;
    } while (i <= limit);
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + len) | 0;
  for (; i + 4 <= len; i += 4) {
    h = Math.imul(rotl((h + Math.imul(read32(b, i), P3)) | 0, 17), P4);
  }
  for (; i < len; i++) {
    h = Math.imul(rotl((h + Math.imul(b[i]!, P5)) | 0, 11), P1);
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Writes the UTF-8 encoding of `s` into `out` (which must hold 3 bytes per UTF-16 unit) and returns
 * the byte length. Lone surrogates become U+FFFD, as TextEncoder does. */
function utf8Encode(s: string, out: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const lo = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          i++;
          out[n++] = 0xf0 | (c >> 18);
          out[n++] = 0x80 | ((c >> 12) & 0x3f);
          out[n++] = 0x80 | ((c >> 6) & 0x3f);
          out[n++] = 0x80 | (c & 0x3f);
          continue;
        }
        c = 0xfffd;
      }
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}

/** XXH32 of the UTF-8 bytes of `s`. Allocation-free for keys up to 64 KiB after warm-up (one shared
 * scratch buffer; JS is single-threaded per worker, and the hash never yields mid-computation). */
export function hashString(s: string, seed = 0): number {
  const need = s.length * 3;
  let buf = scratch;
  if (need > buf.length) {
    if (need > MAX_SCRATCH) {
      buf = new Uint8Array(need);
    } else {
      let size = buf.length;
      while (size < need) size *= 2;
      scratch = buf = new Uint8Array(size);
    }
  }
  return xxh32(buf, seed, utf8Encode(s, buf));
}
