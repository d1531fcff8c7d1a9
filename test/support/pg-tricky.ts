/**
 * Values that COPY's text, JSON, arrays and the parsers each get wrong in their own way, and the table that holds
 * them: the PostgreSQL connector's COPY and encoded tests write and read these.
 */
import type { Row } from "../../src/core/binding.ts";

export const trickyColumns = `id int PRIMARY KEY, t text, n numeric(30,10), at timestamptz, day date, doc jsonb, j json,
  big int8, tags text[], grid int4[], flag boolean, raw bytea, f float8, span interval`;
export const long = `${"é🎉x\t\\\n\r".repeat(20_000)}end`; // ~140 kB, escapes all along
export const tricky: Row[] = [
  { id: 1, t: null, n: "12345678901234567890.0123456789", big: "9223372036854775807", flag: true },
  { id: 2, t: "", n: "-0.0000000001", big: "-9007199254740993", flag: false },
  { id: 3, t: "\\N", n: "NaN", big: "9007199254740993" },
  { id: 4, t: "\t", at: "2024-06-30 23:59:59.999999+05:30", day: "2024-02-29" },
  { id: 5, t: "\n", at: "1999-12-31T18:00:00.000001-08:00", day: "infinity", span: "1 day 02:03:04.000005" },
  { id: 6, t: "\r", at: new Date("2024-01-01T00:00:00.123Z"), f: 0.1 },
  { id: 7, t: "\\", at: "-infinity", f: -1.5e300 },
  { id: 8, t: "a\tb\nc\rd\\e\\N\\.\r\n", f: Number.NaN },
  { id: 9, t: "ünïcødé 日本語 👩‍👩‍👧 🎉 \u0001\b\f\v", raw: Buffer.from([0, 1, 92, 9, 10, 13, 255]) },
  { id: 10, t: long },
  {
    id: 11,
    doc: { a: { b: [1, "two", null, { c: true }] }, e: [], s: 't\tn\n\r\\ "q" 🎉 \\N', n: 1.5, z: {} },
    j: '{ "kept" :\n\t"as written" }',
  },
  { id: 12, doc: [1, [2, [3]], { "key with space": "ü", "\\": "\\\\" }], j: { x: [1, 2] } },
  {
    id: 13,
    tags: ["a", "b,c", '"quoted"', "", null, "🎉", "back\\slash", "{brace}", "NULL", "tab\there", "new\nline"],
    grid: [
      [1, 2],
      [3, null],
    ],
  },
  { id: 14, tags: [], grid: [], raw: Buffer.alloc(0), doc: '["JSON text"]', j: null },
  { id: 15, t: "𝄞".repeat(1000), n: "0.0000000001", f: 1e-300, doc: { deep: { deeper: { deepest: ["🎉"] } } } },
];

/** A row of the tricky table with every column NULL: what a column the row was written without reads as. */
const blank: Row = {
  t: null,
  n: null,
  at: null,
  day: null,
  doc: null,
  j: null,
  big: null,
  tags: null,
  grid: null,
  flag: null,
  raw: null,
  f: null,
  span: null,
};

/**
 * `tricky` as every read gives it back once written, whichever the write and the read: each column as its parser
 * makes it (numeric, int8, dates, instants and intervals as the server's text, instants in UTC), every field of every
 * row, so that a fault both reads share fails too.
 */
export const trickyRead: Row[] = [
  { ...blank, id: 1, n: "12345678901234567890.0123456789", big: "9223372036854775807", flag: true },
  { ...blank, id: 2, t: "", n: "-0.0000000001", big: "-9007199254740993", flag: false },
  { ...blank, id: 3, t: "\\N", n: "NaN", big: "9007199254740993" },
  { ...blank, id: 4, t: "\t", at: "2024-06-30 18:29:59.999999+00", day: "2024-02-29" },
  {
    ...blank,
    id: 5,
    t: "\n",
    at: "2000-01-01 02:00:00.000001+00",
    day: "infinity",
    span: "1 day 02:03:04.000005",
  },
  { ...blank, id: 6, t: "\r", at: "2024-01-01 00:00:00.123+00", f: 0.1 },
  { ...blank, id: 7, t: "\\", at: "-infinity", f: -1.5e300 },
  { ...blank, id: 8, t: "a\tb\nc\rd\\e\\N\\.\r\n", f: Number.NaN },
  { ...blank, id: 9, t: "ünïcødé 日本語 👩‍👩‍👧 🎉 \u0001\b\f\v", raw: Buffer.from([0, 1, 92, 9, 10, 13, 255]) },
  { ...blank, id: 10, t: long },
  {
    ...blank,
    id: 11,
    doc: { a: { b: [1, "two", null, { c: true }] }, e: [], s: 't\tn\n\r\\ "q" 🎉 \\N', n: 1.5, z: {} },
    j: { kept: "as written" },
  },
  { ...blank, id: 12, doc: [1, [2, [3]], { "key with space": "ü", "\\": "\\\\" }], j: { x: [1, 2] } },
  {
    ...blank,
    id: 13,
    tags: ["a", "b,c", '"quoted"', "", null, "🎉", "back\\slash", "{brace}", "NULL", "tab\there", "new\nline"],
    grid: [
      [1, 2],
      [3, null],
    ],
  },
  // a string written to a jsonb column is JSON text; an empty bytea reads as an empty Buffer, empty arrays as []
  { ...blank, id: 14, tags: [], grid: [], raw: Buffer.alloc(0), doc: ["JSON text"] },
  {
    ...blank,
    id: 15,
    t: "𝄞".repeat(1000),
    n: "0.0000000001",
    f: 1e-300,
    doc: { deep: { deeper: { deepest: ["🎉"] } } },
  },
];
