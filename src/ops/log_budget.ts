/**
 * A token bucket for log lines that outside input can trigger (one per handshake, per roam): whoever
 * holds a key can make those events as often as it likes, and the log must not grow with it. Lines over
 * the budget are counted, and the next line that gets through says how many were suppressed.
 */
import { log, type LogFields, type LogLevel } from "./log.ts";

/** Lines per second, with a burst, shared by every event it guards. */
export class LogBudget {
  readonly #perSecond: number;
  readonly #burst: number;
  #tokens: number;
  #last = -Infinity;
  #suppressed = 0;

  constructor(perSecond: number, burst: number) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#tokens = burst;
  }

  /** True when a line may be written at monotonic time `nowMs` (takes a token); counts it otherwise. */
  take(nowMs: number): boolean {
    if (this.#last !== -Infinity) {
      this.#tokens = Math.min(this.#burst, this.#tokens + ((nowMs - this.#last) / 1000) * this.#perSecond);
    }
    this.#last = nowMs;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.#suppressed++;
    return false;
  }

  /** Lines suppressed since the last one written; resets the count. */
  takeSuppressed(): number {
    const n = this.#suppressed;
    this.#suppressed = 0;
    return n;
  }

  /** Write `message` at `level` if the budget allows; it carries `suppressed=N` after a quiet spell. */
  write(level: LogLevel, message: string, fields: LogFields, nowMs: number = performance.now()): void {
    if (!this.take(nowMs)) return;
    const suppressed = this.takeSuppressed();
    log[level](message, suppressed > 0 ? { ...fields, suppressed } : fields);
  }
}
