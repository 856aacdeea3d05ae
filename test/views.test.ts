import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { iso } from "../src/api/views.js";

describe("iso (times on the wire)", () => {
  it("is exactly Date's toISOString, for any time a Date can hold, in any order of calls", () => {
    const time = fc.oneof(
      fc.integer({ min: 0, max: 253_402_300_799_999 }),
      fc.integer({ min: Date.UTC(2025, 0, 1), max: Date.UTC(2025, 0, 1) + 180_000 }), // many in one minute
      fc.integer({ min: -8.64e15, max: 8.64e15 }),
      fc.double({ min: -1e13, max: 1e13, noNaN: true }),
    );
    fc.assert(
      fc.property(fc.array(time, { minLength: 1, maxLength: 50 }), (times) => {
        for (const ms of times) expect(iso(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 500 },
    );
    expect(iso(null)).toBeNull();
    expect(iso(253_402_300_799_999)).toBe("9999-12-31T23:59:59.999Z");
    expect(iso(0)).toBe("1970-01-01T00:00:00.000Z");
  });
});
