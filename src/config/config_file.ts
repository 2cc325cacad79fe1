/** Reading a TOML config file and pointing at the line a field stands on, for error messages. */
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "./config_error.ts";

/** A parsed config file that can say where each field was written. */
export class ConfigFile {
  readonly path: string;
  readonly data: Record<string, unknown>;
  readonly #lines: string[];

  constructor(path: string, text: string) {
    this.path = path;
    this.#lines = text.split(/\r?\n/);
    try {
      this.data = parse(text) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof TomlError) {
        const first = e.message.split("\n")[0];
        throw new ConfigError(`${path}:${e.line}: not valid TOML: ${first}`);
      }
      throw new ConfigError(`${path}: not valid TOML: ${(e as Error).message}`);
    }
  }

  /** Read and parse `path`; a missing or unreadable file is a ConfigError. */
  static load(path: string): ConfigFile {
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
      throw new ConfigError(`--config ${path}: cannot read it: ${why}`);
    }
    return new ConfigFile(path, text);
  }

  /**
   * `path:line: section.key` for a field, e.g. `config.toml:12: server.mtu`.
   * `table` is a dotted header (`server`, `server.peers`); `index` picks the n-th `[[array]]` table.
   */
  where(table: string, key: string, index?: number): string {
    const label = index === undefined ? `${table}.${key}` : `${table}[${index}].${key}`;
    const line = this.#lineOf(table, key, index);
    return line ? `${this.path}:${line}: ${label}` : `${this.path}: ${label}`;
  }

  #lineOf(table: string, key: string, index?: number): number | undefined {
    let current = "";
    let seen = -1;
    let headerLine: number | undefined;
    const keyPattern = new RegExp(`^\\s*("?)${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\1\\s*=`);
    for (let i = 0; i < this.#lines.length; i++) {
      const header = /^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?/.exec(this.#lines[i]);
      if (header) {
        current = header[1];
        if (current === table) {
          seen++;
          if (index === undefined || seen === index) headerLine = i + 1;
        }
        continue;
      }
      if (current !== table || (index !== undefined && seen !== index)) continue;
      if (keyPattern.test(this.#lines[i])) return i + 1;
    }
    return headerLine;
  }
}
