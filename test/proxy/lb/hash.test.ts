// The consistent-hash function must never change silently: a change remaps every session in every
// mesh that upgrades. These are known answers of XXH32 from the reference C implementation
// (libxxhash 0.8.1, XXH32(bytes, len, seed) over the UTF-8 bytes; lone surrogates as U+FFFD).
import t from 'tap';
import { hashString, xxh32 } from '../../../dist/proxy/lb/hash.js';

const KNOWN: readonly [string, number, number][] = [
  ['', 0, 0x02cc5d05],
  ['a', 0, 0x550d7456],
  ['abc', 0, 0x32d153ff],
  ['Nobody inspects the spammish repetition', 0, 0xe2293b2f],
  ['0123456789abcde', 0, 0x1dbdfa0f], // 15 bytes: tail only
  ['0123456789abcdef', 0, 0xc2c45b69], // 16 bytes: one stripe
  ['0123456789abcdef0', 0, 0xaa9118bd], // stripe + 1 byte
  ['The quick brown fox jumps over the lazy dog', 0, 0xe85ea4de],
  ['x'.repeat(100), 0, 0x4bd30d3a],
  ['', 1, 0x0b2cb792],
  ['abc', 1, 0xaa3da8ff],
  ['abc', 0x9e3779b1, 0xa1ae7709],
  ['abc', 0xffffffff, 0xb22b1420],
  // Shapes courier hashes: endpoint keys (Maglev offset/skip seeds 0/1), ring vnodes, request keys.
  ['10.0.0.1:8080', 0, 0xc58937ba],
  ['10.0.0.1:8080', 1, 0xc707185f],
  ['10.0.0.1:8080_0', 0, 0xd0455264],
  ['10.0.0.1:8080_1023', 0, 0x9811ad2b],
  ['[2001:db8::1]:443', 0, 0xaf7b142c],
  ['user-42', 0, 0x61819a7e],
  // UTF-8: 2-, 3- and 4-byte sequences and lone surrogates.
  ['é', 0, 0x33a52927],
  ['日本語', 0, 0xc8ae20bd],
  ['😀', 0, 0x433940bc],
  ['\ud800', 0, 0x759d8851],
  ['a\udc00b', 0, 0xad770ccf],
];

t.test('known answers (XXH32 reference vectors)', async (t) => {
  for (const [input, seed, expected] of KNOWN) {
    const label = `XXH32(${JSON.stringify(input.length > 20 ? `${input.slice(0, 20)}…` : input)}, ${seed})`;
    t.equal(hashString(input, seed), expected, label);
    t.equal(xxh32(new TextEncoder().encode(input), seed), expected, `${label} over bytes`);
  }
});

t.test('keys longer than the shared scratch buffer (64 KiB) hash the same way', async (t) => {
  t.equal(hashString('x'.repeat(100_000)), 0xdc31fc23);
  t.equal(hashString('é'.repeat(30_000)), 0xd0b76b99);
  // The shared buffer is unaffected by a one-off long key or by a previous longer key.
  t.equal(hashString('abc'), 0x32d153ff);
  hashString('y'.repeat(5000));
  t.equal(hashString('abc'), 0x32d153ff);
});

t.test('default seed is 0, output is an unsigned 32-bit integer', async (t) => {
  t.equal(hashString('abc'), hashString('abc', 0));
  for (let i = 0; i < 1000; i++) {
    const h = hashString(`k${i}`);
    t.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff);
  }
});

t.test('xxh32 honours an explicit length', async (t) => {
  const bytes = new TextEncoder().encode('abcdef');
  t.equal(xxh32(bytes, 0, 3), 0x32d153ff);
});

t.test('sequential keys spread evenly over 16 buckets (chi-squared)', async (t) => {
  // 16,000 keys `10.0.0.1:8080_i`, 1,000 expected per bucket of the top 4 bits. Chi-squared with 15
  // degrees of freedom exceeds 37.7 with probability 0.1%.
  const buckets = new Array<number>(16).fill(0);
  for (let i = 0; i < 16_000; i++) {
    const b = hashString(`10.0.0.1:8080_${i}`) >>> 28;
    buckets[b] = buckets[b]! + 1;
  }
  const chi2 = buckets.reduce((sum, c) => sum + (c - 1000) ** 2 / 1000, 0);
  t.ok(chi2 < 37.7, `chi2 = ${chi2.toFixed(1)}`);
});
