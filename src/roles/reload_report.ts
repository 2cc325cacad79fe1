/** What a SIGHUP does with settings besides the peers: logging applies at once, the rest is reported. */
import { log, type LogFormat, type LogLevel, setLogLevel, setLogOutput } from "../ops/log.ts";
import type { SettingChange } from "../config/settings_diff.ts";

/** Apply a changed `log_level` or `log_format` from a re-read config, each logged. */
export function applyLogSettings(
  running: { logLevel: LogLevel; logFormat: LogFormat },
  next: { logLevel: LogLevel; logFormat: LogFormat },
): void {
  if (next.logLevel !== running.logLevel) {
    setLogLevel(next.logLevel);
    log.info("applied changed setting", { setting: "log_level", value: next.logLevel });
  }
  if (next.logFormat !== running.logFormat) {
    setLogOutput({ format: next.logFormat });
    log.info("applied changed setting", { setting: "log_format", value: next.logFormat });
  }
}

/** One warning per changed setting that keeps its running value until a restart. */
export function reportNotApplied(changes: readonly SettingChange[]): void {
  for (const c of changes) {
    log.warn(`changed setting ${c.setting} not applied; a restart applies it`, { ...c });
  }
}
