import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Format from "typebox/format";
import { isDateTime } from "../../src/core/formats.ts";

describe("date-time format", () => {
  it("gives TypeBox's verdict on every case, fast path or not", () => {
    const cases = [
      "2025-01-01T00:00:00Z",
      "2025-01-01T00:00:00.123456Z",
      "2025-12-31T23:59:59+14:00",
      "2024-02-29T12:00:00-05:30",
      "2023-02-29T12:00:00Z", // not a leap year
      "2025-04-31T12:00:00Z", // April has 30 days
      "2025-13-01T00:00:00Z",
      "2025-01-01T24:00:00Z",
      "2025-01-01T23:60:00Z",
      "2016-12-31T23:59:60Z", // a leap second: TypeBox's own rules decide
      "2025-01-01t00:00:00z",
      "2025-01-01T00:00:00",
      "2025-01-01T00:00:00.Z",
      "2025-01-01T00:00:00+24:00",
      "2025-01-01T00:00:00Z[Europe/Paris]",
      "2025-1-01T00:00:00Z",
      "not a date",
      "",
    ];
    for (const value of cases) assert.equal(isDateTime(value), Format.IsDateTime(value), value);
  });
});
