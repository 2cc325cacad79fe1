/**
 * Structured logging: one line per event on stderr. Text is `TIME LEVEL message key=value ...`; under
 * journald (`JOURNAL_STREAM` set) it is `<PRIORITY>LEVEL message key=value ...` and the journal keeps the
 * time; JSON is one object per line with `time`, `level`, `msg` and the fields (after `<PRIORITY>` under
 * journald, which strips it).
 * A thin module of our own (JSR's @std/log is not reachable here, and this is all we need).
 * Never pass keys or packet contents as fields.
 */

/** Log levels, least to most severe. `trace` adds one line per packet. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

/** The accepted level names, for validation messages. */
export const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error"];

/** How lines are written. */
export type LogFormat = "text" | "json";

/** The accepted format names. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

const RANK: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };
/** syslog priorities (sd-daemon(3)): err 3, warning 4, info 6, debug 7. */
const PRIORITY: Record<LogLevel, number> = { trace: 7, debug: 7, info: 6, warn: 4, error: 3 };

/** A warning with the same message prints at most once per this many ms; the next line counts the rest. */
export const WARN_REPEAT_MS = 10_000;
/** Distinct warning messages remembered for rate limiting (they are constants of the code, so few). */
const WARN_KEYS_MAX = 256;

/** Field values a log line may carry. */
export type LogFields = Record<string, string | number | boolean | bigint | undefined | null>;

const encoder = new TextEncoder();
/** Where lines go; tests swap it. */
let sink = (line: string): void => {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
};

let threshold = RANK.info;
let format: LogFormat = "text";
let journal = false;
let clock = (): number => Date.now();

/** True when trace lines are printed: the packet loops check it before any per-packet logging work. */
export let traceEnabled = false;
/** True when debug lines are printed: check it before building per-packet fields. */
export let debugEnabled = false;

/** Set the lowest level that is printed. */
export function setLogLevel(level: LogLevel): void {
  threshold = RANK[level];
  debugEnabled = threshold <= RANK.debug;
  traceEnabled = threshold === RANK.trace;
}

/** The logger's settings besides the level. */
export interface LogOutput {
  readonly format?: LogFormat;
  /** stderr is the journal: text lines carry the syslog priority and no timestamp. */
  readonly journal?: boolean;
  /** Replaces stderr (tests). */
  readonly sink?: (line: string) => void;
  /** Replaces the wall clock, ms (tests of the rate limit). */
  readonly clock?: () => number;
}

/** Set the format and destination of lines. */
export function setLogOutput(o: LogOutput): void {
  if (o.format) format = o.format;
  if (o.journal !== undefined) journal = o.journal;
  if (o.sink) sink = o.sink;
  if (o.clock) clock = o.clock;
  warnSeen.clear();
  if (flushTimer !== undefined) clearTimeout(flushTimer);
  flushTimer = undefined;
}

/**
 * True when stderr is the journal: systemd sets `JOURNAL_STREAM=DEV:INODE` of the stream it connected, and a
 * child whose stderr went elsewhere (a shell started from a service, a pipe) inherits the variable but not
 * the stream, so both must match (sd_journal_stream_fd(3)).
 */
export function stderrIsJournal(journalStream: string | undefined): boolean {
  if (journalStream === undefined) return false;
  try {
    const st = Deno.statSync("/proc/self/fd/2");
    return journalStream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** Per warning message: when it last printed and how many were held back since. */
const warnSeen = new Map<string, { at: number; suppressed: number }>();
/** Prints the held-back counts once their window ends, so a burst that stops is still accounted for. */
let flushTimer: ReturnType<typeof setTimeout> | undefined;

/** False when this warning repeats within WARN_REPEAT_MS; otherwise the count held back (0 if none). */
function warnAllowed(message: string, now: number): number | false {
  const seen = warnSeen.get(message);
  if (seen === undefined) {
    if (warnSeen.size >= WARN_KEYS_MAX) warnSeen.clear();
    warnSeen.set(message, { at: now, suppressed: 0 });
    return 0;
  }
  if (now - seen.at < WARN_REPEAT_MS) {
    if (seen.suppressed++ === 0 && flushTimer === undefined) {
      const t = setTimeout(flushSuppressedWarnings, seen.at + WARN_REPEAT_MS - now);
      Deno.unrefTimer(t);
      flushTimer = t;
    }
    return false;
  }
  const n = seen.suppressed;
  seen.at = now;
  seen.suppressed = 0;
  return n;
}

/**
 * For each warning whose window has ended with repeats held back: one line `message suppressed=N`, and a
 * new window. Runs by itself after a window; exported for tests.
 */
export function flushSuppressedWarnings(): void {
  if (flushTimer !== undefined) clearTimeout(flushTimer);
  flushTimer = undefined;
  const now = clock();
  let next = Infinity;
  for (const [message, seen] of warnSeen) {
    if (seen.suppressed === 0) continue;
    if (now - seen.at >= WARN_REPEAT_MS) {
      const n = seen.suppressed;
      seen.at = now;
      seen.suppressed = 0;
      write("warn", message, undefined, n, now);
    } else {
      next = Math.min(next, seen.at + WARN_REPEAT_MS - now);
    }
  }
  if (next !== Infinity) {
    const t = setTimeout(flushSuppressedWarnings, next);
    Deno.unrefTimer(t);
    flushTimer = t;
  }
}

function formatValue(v: string | number | boolean | bigint): string {
  const s = String(v);
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

function jsonValue(v: string | number | boolean | bigint): string | number | boolean {
  return typeof v === "bigint" ? String(v) : v;
}

/** Keys JSON lines use themselves; a field of that name is written as `field_<name>`. */
const RESERVED = new Set(["time", "level", "msg"]);

function emit(level: LogLevel, message: string, fields?: LogFields): void {
  if (RANK[level] < threshold) return;
  const now = clock();
  let suppressed = 0;
  if (level === "warn") {
    const allowed = warnAllowed(message, now);
    if (allowed === false) return;
    suppressed = allowed;
  }
  write(level, message, fields, suppressed, now);
}

function write(
  level: LogLevel,
  message: string,
  fields: LogFields | undefined,
  suppressed: number,
  now: number,
) {
  if (format === "json") {
    const obj: Record<string, string | number | boolean> = {
      time: new Date(now).toISOString(),
      level,
      msg: message,
    };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        if (v !== undefined && v !== null) obj[RESERVED.has(k) ? `field_${k}` : k] = jsonValue(v);
      }
    }
    if (suppressed > 0) obj.suppressed = suppressed;
    // journald strips the priority prefix, so the stored message is still one JSON object.
    sink(journal ? `<${PRIORITY[level]}>${JSON.stringify(obj)}` : JSON.stringify(obj));
    return;
  }
  const head = journal ? `<${PRIORITY[level]}>` : `${new Date(now).toISOString()} `;
  let line = `${head}${level.toUpperCase().padEnd(5)} ${message}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined || v === null) continue;
      line += ` ${k}=${formatValue(v)}`;
    }
  }
  if (suppressed > 0) line += ` suppressed=${suppressed}`;
  sink(line);
}

/**
 * The project's logger. A `warn` whose message repeats within WARN_REPEAT_MS is held back; the next one
 * printed, or a line of its own when the window ends, carries `suppressed=N`.
 */
export const log = {
  trace: (message: string, fields?: LogFields): void => emit("trace", message, fields),
  debug: (message: string, fields?: LogFields): void => emit("debug", message, fields),
  info: (message: string, fields?: LogFields): void => emit("info", message, fields),
  warn: (message: string, fields?: LogFields): void => emit("warn", message, fields),
  error: (message: string, fields?: LogFields): void => emit("error", message, fields),
};
