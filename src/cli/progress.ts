import type { RunProgress } from "../engine/context.ts";
import { count, plural } from "./output.ts";

/**
 * Progress bars per stage on a terminal (stderr), redrawn in place at most ten times a second. Hand-written: the
 * totals are not known in advance (a source streams), so each bar is measured against the stage before it
 * (transform against extracted, each load against what transform produced), which no bar library models.
 */
export class ProgressView {
  readonly #stream: NodeJS.WriteStream;
  #lines = 0;
  #last = 0;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
  }

  #bar(done: number, total: number, finished: boolean): string {
    const width = 24;
    const ratio = total === 0 ? (finished ? 1 : 0) : Math.min(1, done / total);
    const filled = Math.round(ratio * width);
    return `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
  }

  update(progress: RunProgress, force = false): void {
    const now = Date.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    const seconds = Math.max(0.001, (now - progress.startedAt) / 1000);
    const canonical = progress.transformed - progress.quarantined - progress.failed;
    const lines = [
      `run ${progress.runId} · ${progress.flow} · ${count(Math.round(progress.transformed / seconds))} records/s`,
      `  extract    ${progress.extractDone ? this.#bar(1, 1, true) : this.#bar(0, 0, false)} ${count(progress.extracted)} in ${plural(progress.chunks, "chunk")}${progress.extractDone ? " ✓" : ""}`,
      `  transform  ${this.#bar(progress.transformed, progress.extracted, progress.extractDone)} ${count(progress.transformed)}${progress.quarantined > 0 ? ` (${count(progress.quarantined)} quarantined)` : ""}${progress.failed > 0 ? ` (${count(progress.failed)} failed)` : ""}`,
    ];
    for (const [name, target] of Object.entries(progress.targets)) {
      const done = target.loaded + target.unchanged + target.quarantined + target.failed;
      const detail = [
        `${count(target.loaded)} loaded`,
        target.unchanged > 0 ? `${count(target.unchanged)} unchanged` : "",
        target.quarantined > 0 ? `${count(target.quarantined)} quarantined` : "",
        target.failed > 0 ? `${count(target.failed)} failed` : "",
      ]
        .filter((part) => part !== "")
        .join(", ");
      lines.push(
        `  load ${name.padEnd(Math.max(5, name.length))} ${this.#bar(done, canonical, progress.extractDone && done >= canonical)} ${detail}`,
      );
    }
    for (const [system, { until, reason }] of Object.entries(progress.paused ?? {})) {
      const seconds = Math.max(0, Math.ceil((until - now) / 1000));
      if (reason === "breaker")
        lines.push(`  ⏸ ${system}: circuit open after repeated failures, next probe in ${seconds} s`);
      else if (until > now) lines.push(`  ⏸ ${system}: rate limited (429), calls held back for ${seconds} s`);
    }
    let text = this.#lines > 0 ? `\x1b[${this.#lines}F` : "";
    for (const line of lines) text += `\x1b[2K${line}\n`;
    // a frame shorter than the last one clears the lines it no longer covers
    for (let extra = lines.length; extra < this.#lines; extra++) text += "\x1b[2K\n";
    this.#stream.write(text);
    this.#lines = lines.length;
  }

  /** Leaves the last frame on screen. */
  finish(progress: RunProgress | undefined): void {
    if (progress !== undefined) this.update(progress, true);
  }
}
