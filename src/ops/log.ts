/**
 * Structured logging: one line per event on stderr, `TIME LEVEL message key=value ...`.
 * A thin module of our own (JSR's @std/log is not reachable here, and this is all we need).
 * Never pass keys or packet contents as fields.
 */

/** Log levels, least to most severe. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** The accepted level names, for validation messages. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Field values a log line may carry. */
export type LogFields = Record<string, string | number | boolean | bigint | undefined | null>;

const encoder = new TextEncoder();
function write(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

let threshold = RANK.info;

/** True when debug lines are printed: check it before building per-packet fields. */
export let debugEnabled = false;

/** Set the lowest level that is printed. */
export function setLogLevel(level: LogLevel): void {
  threshold = RANK[level];
  debugEnabled = threshold === RANK.debug;
}

function formatValue(v: string | number | boolean | bigint): string {
  const s = String(v);
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

function emit(level: LogLevel, message: string, fields?: LogFields): void {
  if (RANK[level] < threshold) return;
  let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${message}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined || v === null) continue;
      line += ` ${k}=${formatValue(v)}`;
    }
  }
  write(line);
}

/** The project's logger. */
export const log = {
  debug: (message: string, fields?: LogFields): void => emit("debug", message, fields),
  info: (message: string, fields?: LogFields): void => emit("info", message, fields),
  warn: (message: string, fields?: LogFields): void => emit("warn", message, fields),
  error: (message: string, fields?: LogFields): void => emit("error", message, fields),
};
