/**
 * Small, stable, dependency-free string hashes. Pure functions: the same input gives the same
 * output on every node, every process and every version of Node, because slot routing, retry
 * jitter and fire jitter must agree across the cluster and across restarts.
 *
 * All hashes run over the UTF-8 bytes of the string (a lone surrogate counts as U+FFFD, as with
 * TextEncoder), so another implementation in another language can reproduce them.
 */

/** Calls `eat` with each UTF-8 byte of `s`. */
function forEachUtf8Byte(s: string, eat: (byte: number) => void): void {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      c = 0xfffd;
    }
    if (c < 0x80) {
      eat(c);
    } else if (c < 0x800) {
      eat(0xc0 | (c >> 6));
      eat(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      eat(0xe0 | (c >> 12));
      eat(0x80 | ((c >> 6) & 0x3f));
      eat(0x80 | (c & 0x3f));
    } else {
      eat(0xf0 | (c >> 18));
      eat(0x80 | ((c >> 12) & 0x3f));
      eat(0x80 | ((c >> 6) & 0x3f));
      eat(0x80 | (c & 0x3f));
    }
  }
}

/** FNV-1a, 32-bit, over the UTF-8 bytes of `s`; an unsigned 32-bit integer. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  forEachUtf8Byte(s, (byte) => {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  });
  return h >>> 0;
}

/**
 * FNV-1a, 64-bit, over the UTF-8 bytes of `s`, as [hi, lo] (each an unsigned 32-bit integer).
 * Computed with four 16-bit limbs so that every intermediate product stays exact in a double.
 */
export function fnv1a64(s: string): [number, number] {
  // offset basis 0xcbf29ce484222325, limbs from least significant
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  forEachUtf8Byte(s, (byte) => {
    h0 ^= byte;
    // prime 0x100000001b3 = 2^40 + 0x1b3: limb 0 is 0x1b3, limb 2 is 0x100
    const r0 = h0 * 0x1b3;
    const r1 = h1 * 0x1b3 + (r0 >>> 16);
    const r2 = h2 * 0x1b3 + h0 * 0x100 + Math.floor(r1 / 0x10000);
    const r3 = h3 * 0x1b3 + h1 * 0x100 + Math.floor(r2 / 0x10000);
    h0 = r0 & 0xffff;
    h1 = r1 & 0xffff;
    h2 = r2 & 0xffff;
    h3 = r3 & 0xffff;
  });
  return [(h3 * 0x10000 + h2) >>> 0, (h1 * 0x10000 + h0) >>> 0];
}

/** FNV-1a 64 as 16 lowercase hex digits. */
export function fnv1a64Hex(s: string): string {
  const [hi, lo] = fnv1a64(s);
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/** A deterministic number in [0, 1) from the top 53 bits of FNV-1a 64 of `s`. */
export function unitInterval(s: string): number {
  const [hi, lo] = fnv1a64(s);
  // all 32 bits of hi and the top 21 bits of lo: an integer in [0, 2^53)
  return (hi * 0x200000 + (lo >>> 11)) / 0x20000000000000;
}
