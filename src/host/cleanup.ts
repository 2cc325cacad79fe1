/**
 * Undo log for host changes (TUN, routes, forwarding, NAT): every change registers its undo right after it
 * succeeds, and `runAll` undoes them newest first on a clean stop, a signal or a fatal error.
 */

/** One undo step that failed during `runAll`. */
export interface CleanupFailure {
  description: string;
  error: unknown;
}

/** An ordered set of undo steps, each run at most once. */
export class Cleanup {
  #steps: { description: string; undo: () => void | Promise<void> }[] = [];
  #running: Promise<CleanupFailure[]> | null = null;
  readonly #onError?: (failure: CleanupFailure) => void;

  /** `onError` is told about each failed step (e.g. to log it); failures never stop the remaining steps. */
  constructor(onError?: (failure: CleanupFailure) => void) {
    this.#onError = onError;
  }

  /** Register an undo step; `description` names the change, for error reports. */
  add(description: string, undo: () => void | Promise<void>): void {
    this.#steps.push({ description, undo });
  }

  /** Number of steps not yet run. */
  get size(): number {
    return this.#steps.length;
  }

  /**
   * Run every registered step in reverse order of registration, each once; a failing step is recorded and
   * the rest still run. Resolves with the failures (empty when all went well). Concurrent calls share one run;
   * steps added after a run are run by the next call.
   */
  runAll(): Promise<CleanupFailure[]> {
    // `.finally` runs after the assignment even when there is nothing to undo.
    this.#running ??= this.#run().finally(() => this.#running = null);
    return this.#running;
  }

  async #run(): Promise<CleanupFailure[]> {
    const failures: CleanupFailure[] = [];
    for (let step = this.#steps.pop(); step; step = this.#steps.pop()) {
      try {
        await step.undo();
      } catch (error) {
        const failure = { description: step.description, error };
        failures.push(failure);
        this.#onError?.(failure);
      }
    }
    return failures;
  }
}

/** What `installSignalCleanup` calls before cleaning up; may return the exit code to use. */
export type StopHandler = (
  reason: Deno.Signal | "fatal",
  error?: unknown,
) => void | number | Promise<void | number>;

/**
 * On SIGINT/SIGTERM (exit 0, a clean stop) and on an uncaught error or unhandled rejection (exit 1):
 * call `onStop` (to stop loops and log), run `cleanup.runAll()`, then exit. A second signal while cleaning up
 * is ignored so the undo steps finish. Returns a function that removes the handlers.
 */
export function installSignalCleanup(cleanup: Cleanup, onStop?: StopHandler): () => void {
  let stopping = false;
  const stop = async (reason: Deno.Signal | "fatal", error?: unknown) => {
    if (stopping) return;
    stopping = true;
    let code = reason === "fatal" ? 1 : 0;
    try {
      if (!onStop && reason === "fatal") console.error(error); // nobody else will report it
      const chosen = await onStop?.(reason, error);
      if (typeof chosen === "number") code = chosen;
    } catch {
      code = 1;
    }
    await cleanup.runAll();
    Deno.exit(code);
  };
  const onSigint = () => void stop("SIGINT");
  const onSigterm = () => void stop("SIGTERM");
  const onError = (e: ErrorEvent) => {
    e.preventDefault(); // keep the process alive until the undo steps have run
    void stop("fatal", e.error);
  };
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    void stop("fatal", e.reason);
  };
  Deno.addSignalListener("SIGINT", onSigint);
  Deno.addSignalListener("SIGTERM", onSigterm);
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onRejection);
  return () => {
    Deno.removeSignalListener("SIGINT", onSigint);
    Deno.removeSignalListener("SIGTERM", onSigterm);
    globalThis.removeEventListener("error", onError);
    globalThis.removeEventListener("unhandledrejection", onRejection);
  };
}
