import { describe, expect, it } from "vitest";
import { EarlyRevocations } from "../src/client/revocations.js";

describe("revocations that arrive before their assignment", () => {
  it("refuse that assignment and older ones, not a later claim of the same execution", () => {
    const r = new EarlyRevocations();
    r.note("x1", 7);
    expect(r.revoked("x1", 7)).toBe(true);
    expect(r.revoked("x1", 6)).toBe(true);
    expect(r.revoked("x1", 8)).toBe(false);
    expect(r.revoked("x2", 7)).toBe(false);
    r.note("x1", 5); // an older revocation does not lower what is known
    expect(r.revoked("x1", 7)).toBe(true);
  });

  it("forget the oldest beyond their bound", () => {
    const r = new EarlyRevocations(2);
    r.note("a", 1);
    r.note("b", 1);
    r.note("a", 2); // refreshed: now the newest
    r.note("c", 1);
    expect([r.revoked("a", 2), r.revoked("b", 1), r.revoked("c", 1)]).toEqual([true, false, true]);
  });
});
