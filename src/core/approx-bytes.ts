/** About the msgpack size of a JSON-like value (strings counted as one byte a character): cheaper than encoding it. */
export function approxBytes(v: unknown): number {
  if (typeof v === "string") return v.length + 5;
  if (v === null || typeof v !== "object") return 9;
  if (v instanceof Uint8Array) return v.byteLength + 5;
  let n = 5;
  if (Array.isArray(v)) for (const x of v) n += approxBytes(x);
  else for (const k in v) n += k.length + 1 + approxBytes((v as Record<string, unknown>)[k]);
  return n;
}
