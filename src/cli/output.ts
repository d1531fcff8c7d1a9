/** Plain-text output helpers for the command line: numbers, durations and aligned tables. */

export function count(value: number): string {
  return value.toLocaleString("en-US");
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${seconds} s`;
}

export function timestamp(ms: number | undefined): string {
  if (ms === undefined) return "";
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** Left-aligned columns, numbers right-aligned. */
export function table(rows: readonly (readonly (string | number)[])[], header: readonly string[]): string {
  const all = [header, ...rows.map((row) => row.map((cell) => (typeof cell === "number" ? count(cell) : cell)))];
  const widths = header.map((_, column) => Math.max(...all.map((row) => String(row[column] ?? "").length)));
  const numeric = header.map((_, column) => rows.length > 0 && rows.every((row) => typeof row[column] === "number"));
  return all
    .map((row) =>
      row
        .map((cell, column) => {
          const text = String(cell ?? "");
          return numeric[column] ? text.padStart(widths[column] as number) : text.padEnd(widths[column] as number);
        })
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `1 chunk`, `2 chunks`, `1 retry`, `3 retries`: a count and its noun, in the singular for exactly one. */
export function plural(value: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count(value)} ${value === 1 ? singular : pluralForm}`;
}
