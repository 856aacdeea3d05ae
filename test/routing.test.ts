import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { adHocExecutionId, slotOf, slotOfExecution } from "../src/core/routing.js";

/** The rule as the contract states it, written the plain way: the model the fast path is checked against. */
function modelSlot(tenant: string, id: string): number | null {
  const colon = id.indexOf(":");
  if (colon > 0) return slotOf(tenant, id.slice(0, colon));
  const adHoc = id.length > 5 && id.startsWith("x") && !id.includes(":") && /^[0-9a-f]{4}$/.test(id.slice(1, 5));
  return adHoc ? Number.parseInt(id.slice(1, 5), 16) : null;
}

describe("routing", () => {
  it("an execution id's slot is what the plain rule says, for ad-hoc ids, job fire ids and anything else", () => {
    const hexish = fc.constantFrom(..."0123456789abcdefABCDEFgx:-");
    const idArb = fc.oneof(
      fc.tuple(fc.nat(0xffff), fc.string({ minLength: 1, maxLength: 12 })).map(([slot, unique]) => adHocExecutionId(slot, unique)),
      fc.array(hexish, { minLength: 0, maxLength: 10 }).map((cs) => `x${cs.join("")}`),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(idArb, (id) => {
        expect(slotOfExecution("t", id)).toBe(modelSlot("t", id));
      }),
      { numRuns: 2000 },
    );
  });

  it("an ad-hoc id carries its slot", () => {
    expect(slotOfExecution("t", adHocExecutionId(0xbeef, "u1"))).toBe(0xbeef);
    expect(slotOfExecution("t", "xBEEFu1")).toBeNull(); // upper-case hex is not an ad-hoc id
  });
});
