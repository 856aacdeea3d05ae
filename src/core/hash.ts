/**
 * Small, stable string hashes for everything that must come out the same on every replica, in
 * every process and version: routing a key to its slot, fire jitter, retry jitter. Never
 * Math.random() for these: replicas would disagree.
 *
 * `hash32` is FNV-1a over the UTF-8 bytes of the string (a lone surrogate counts as U+FFFD, as
 * with TextEncoder), so another language can reproduce it; `mix32` (murmur3's finalizer) spreads
 * its bits, since FNV's low bits are weak and slots and jitter use the low or all bits.
 */

/** FNV-1a, 32-bit, over the UTF-8 bytes of `s`; an unsigned 32-bit integer. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), 0x01000193);
    } else if (c < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), 0x01000193);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193);
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finalizer: every input bit affects every output bit. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A deterministic number in [0, 1) derived from `s`. */
export function unitInterval(s: string): number {
  return mix32(hash32(s)) / 0x1_0000_0000;
}
