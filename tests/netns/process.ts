/**
 * A process running inside a test host's network namespace: its output is collected as it arrives so a
 * test can wait for a line, and it can always be stopped within a bounded time.
 */

/** Raised when a process does not print what a test waits for, or exits first. */
export class HostProcessError extends Error {
  /** The output collected so far, so the failure message shows what the process did say. */
  readonly output: string;
  constructor(message: string, output: string) {
    const tail = output.length > 4000 ? "…" + output.slice(-4000) : output;
    super(`${message}\n--- output ---\n${tail}`);
    this.name = "HostProcessError";
    this.output = output;
  }
}

/** How to start a {@link HostProcess}. */
export interface SpawnOptions {
  /** Extra environment variables (merged into the test's own environment). */
  env?: Record<string, string>;
  /** Label for this process in logs; output is echoed live to stderr with it when `VT_VERBOSE` is set. */
  logPrefix?: string;
  /** Pipe stdin so the test can write to it (see {@link HostProcess.stdin}); otherwise stdin is null. */
  stdin?: boolean;
}

/** What helpers need from a test host: a name and a way to start processes (a structural view of `Host`). */
export interface SpawnHost {
  readonly name: string;
  spawn(cmd: string[], opts?: SpawnOptions): HostProcess;
}

type Waiter = { re: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void };

// How long output pipes may stay open after the process itself exited (a grandchild may hold them).
const PIPE_DRAIN_MS = 1000;

/** A child started with `ip netns exec NS cmd...`; `ip` execs the command, so `pid` is the command's own. */
export class HostProcess {
  /** Pid of the command (in the test's pid namespace). */
  readonly pid: number;
  /** The command line as given (without the `ip netns exec` prefix). */
  readonly cmd: readonly string[];
  /** Label used in logs. */
  readonly label: string;
  /** Resolves once the process exited and its output was collected. Never rejects. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Writable stdin when spawned with `stdin: true`. */
  readonly stdin: WritableStream<Uint8Array> | undefined;

  #child: Deno.ChildProcess;
  #out = "";
  #stdout = "";
  #stderr = "";
  #status: Deno.CommandStatus | undefined;
  #waiters = new Set<Waiter>();
  #echo: boolean;
  #readers: ReadableStreamDefaultReader<Uint8Array>[] = [];

  constructor(ns: string, cmd: readonly string[], opts: SpawnOptions = {}) {
    if (cmd.length === 0) throw new TypeError("HostProcess: empty command");
    this.cmd = cmd;
    this.label = opts.logPrefix ?? `${ns}:${cmd[0]}`;
    this.#echo = Deno.env.get("VT_VERBOSE") !== undefined;
    this.#child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, ...cmd],
      env: opts.env,
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.#child.pid;
    this.stdin = opts.stdin ? this.#child.stdin : undefined;
    const readers = [
      this.#pump(this.#child.stdout, (t) => this.#stdout += t),
      this.#pump(this.#child.stderr, (t) => this.#stderr += t),
    ];
    this.exited = this.#child.status.then(async (status) => {
      await this.#drain(readers);
      this.#status = status;
      for (const w of this.#waiters) {
        w.reject(
          new HostProcessError(
            `${this.label} exited (code ${status.code}) before printing ${w.re}`,
            this.#out,
          ),
        );
      }
      this.#waiters.clear();
      return status;
    });
  }

  /** Everything printed so far on stdout and stderr, interleaved as it arrived. */
  output(): string {
    return this.#out;
  }

  /** Stdout printed so far. */
  stdout(): string {
    return this.#stdout;
  }

  /** Stderr printed so far. */
  stderr(): string {
    return this.#stderr;
  }

  /** The exit status, once the process has exited. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Resolves with the first match of `re` in the output; rejects on timeout or if the process exits first. */
  waitForOutput(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const now = this.#out.match(re);
    if (now) return Promise.resolve(now);
    if (this.#status) {
      return Promise.reject(
        new HostProcessError(
          `${this.label} exited (code ${this.#status.code}) before printing ${re}`,
          this.#out,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(
          new HostProcessError(`${this.label}: no output matching ${re} within ${timeoutMs} ms`, this.#out),
        );
      }, timeoutMs);
      const w: Waiter = {
        re,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#waiters.add(w);
    });
  }

  /** Sends a signal if the process still runs (no error if it is gone). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#status) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited: the status promise is about to resolve.
    }
  }

  /** Sends `signal`, waits up to `graceMs`, then SIGKILLs; resolves with the exit status. */
  async stop(signal: Deno.Signal = "SIGTERM", graceMs = 3000): Promise<Deno.CommandStatus> {
    if (this.#status) return this.#status;
    this.kill(signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const graceful = await Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), graceMs)),
    ]);
    clearTimeout(timer);
    if (!graceful) this.kill("SIGKILL");
    return await this.exited;
  }

  async #pump(stream: ReadableStream<Uint8Array>, sink: (text: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    this.#readers.push(reader);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.#append(decoder.decode(value, { stream: true }), sink);
      }
    } catch {
      // Cancelled after the process exited (see #drain).
    }
    this.#append(decoder.decode(), sink);
  }

  #append(text: string, sink: (text: string) => void): void {
    if (text === "") return;
    sink(text);
    this.#out += text;
    if (this.#echo) {
      for (const line of text.split("\n")) if (line !== "") console.error(`[${this.label}] ${line}`);
    }
    for (const w of this.#waiters) {
      const m = this.#out.match(w.re);
      if (m) {
        this.#waiters.delete(w);
        w.resolve(m);
      }
    }
  }

  async #drain(readers: Promise<void>[]): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      Promise.all(readers).then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), PIPE_DRAIN_MS)),
    ]);
    clearTimeout(timer);
    if (drained) return;
    // A grandchild still holds a pipe open: stop reading so the test does not leak the resource.
    await Promise.allSettled(this.#readers.map((r) => r.cancel()));
    await Promise.allSettled(readers);
  }
}
