/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every WAL frame and
 * snapshot. Table-driven "slicing-by-8": eight 256-entry tables let the loop consume 8 bytes per
 * step with independent lookups, which is several times faster in V8 than the byte-at-a-time
 * loop. No dependency, no native code.
 *
 * Example: crc32c(Buffer.from("123456789")) === 0xe3069283 (the standard check value).
 */

const POLYNOMIAL_REFLECTED = 0x82f63b78;
const TABLE_ENTRIES = 256;
const SLICES = 8;

const TABLE: Int32Array = buildTable();

function buildTable(): Int32Array {
  const table = new Int32Array(TABLE_ENTRIES * SLICES);
  for (let n = 0; n < TABLE_ENTRIES; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL_REFLECTED : c >>> 1;
    table[n] = c;
  }
  // Slice k is the CRC of byte n followed by k zero bytes.
  for (let k = 1; k < SLICES; k++) {
    for (let n = 0; n < TABLE_ENTRIES; n++) {
      const prev = table[(k - 1) * TABLE_ENTRIES + n]!;
      table[k * TABLE_ENTRIES + n] = (prev >>> 8) ^ table[prev & 0xff]!;
    }
  }
  return table;
}

/**
 * CRC-32C of bytes [start, end) of `bytes`. Pass a previous result as `seed` to continue a
 * checksum across several buffers. Returns an unsigned 32-bit integer.
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length, seed = 0): number {
  const t = TABLE;
  let c = ~seed | 0;
  let i = start;
  const end8 = end - ((end - start) & 7);
  while (i < end8) {
    c ^= bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    c =
      t[7 * 256 + (c & 0xff)]! ^
      t[6 * 256 + ((c >>> 8) & 0xff)]! ^
      t[5 * 256 + ((c >>> 16) & 0xff)]! ^
      t[4 * 256 + (c >>> 24)]! ^
      t[3 * 256 + bytes[i + 4]!]! ^
      t[2 * 256 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
    i += 8;
  }
  while (i < end) {
    c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
    i++;
  }
  return ~c >>> 0;
}
