/**
 * Kernel tests that need a namespace of their own: a Deno process cannot switch namespace itself, so a
 * test file re-runs itself as a child `deno run` under `ip netns exec`, in a namespace the test creates
 * and always deletes. In the child, {@link CASE_ENV} names the case; `Deno.test` is a no-op there.
 *
 * ```ts
 * const { withNetns, runCase } = childCases(import.meta.filename!, "vpnx");
 * Deno.test("...", () => withNetns((ns) => runCase(ns, "someCase")));
 * await serveChildCase(CASES); // last line of the file: runs the case when this is the child
 * ```
 */

/** Environment variable naming the case the child runs. */
export const CASE_ENV = "VPN_FFI_TEST_CASE";

const decoder = new TextDecoder();
let nsCounter = 0;

/** Runs `cmd args...` in the test's own namespace; throws with its stderr unless it exits 0. Returns stdout. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr)}`);
  return decoder.decode(out.stdout);
}

/** Runs a command inside namespace `ns` (inspection only) and returns its stdout. */
export function nsExec(ns: string, ...cmd: string[]): Promise<string> {
  return sh("ip", ["netns", "exec", ns, ...cmd]);
}

/** How to start a case. */
export interface CaseOptions {
  /** Command prefix between `ip netns exec NS` and deno, e.g. setpriv to drop capabilities. */
  wrap?: string[];
  /** Pipe stdin (the child can then wait for it to close); otherwise stdin is null. */
  stdin?: boolean;
}

/** The parent side of {@link childCases}, bound to one test file. */
export interface ChildCases {
  /** Runs `body` with a fresh network namespace that is deleted afterwards, whatever happens. */
  withNetns(body: (ns: string) => Promise<unknown>): Promise<void>;
  /** Starts case `name` of the test file inside `ns`; stdout and stderr are piped. */
  spawnCase(ns: string, name: string, opts?: CaseOptions): Deno.ChildProcess;
  /** Runs case `name` to completion; throws with its stderr unless it exits 0. Returns its stdout. */
  runCase(ns: string, name: string, opts?: CaseOptions): Promise<string>;
  /** Runs case `name` to completion in a fresh namespace (see {@link withNetns} and {@link runCase}). */
  runInNetns(name: string, opts?: CaseOptions): Promise<void>;
}

/** Case runners for test file `file` (its `import.meta.filename`); namespaces are named `<nsPrefix><pid>_<n>`. */
export function childCases(file: string, nsPrefix: string): ChildCases {
  async function withNetns(body: (ns: string) => Promise<unknown>): Promise<void> {
    const ns = `${nsPrefix}${Deno.pid}_${nsCounter++}`;
    await sh("ip", ["netns", "add", ns]);
    try {
      await body(ns);
    } finally {
      await sh("ip", ["netns", "del", ns]);
    }
  }

  function spawnCase(ns: string, name: string, opts: CaseOptions = {}): Deno.ChildProcess {
    return new Deno.Command("ip", {
      args: ["netns", "exec", ns, ...(opts.wrap ?? []), Deno.execPath(), "run", "-A", file],
      env: { [CASE_ENV]: name },
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  async function runCase(ns: string, name: string, opts: CaseOptions = {}): Promise<string> {
    const out = await spawnCase(ns, name, opts).output();
    if (!out.success) throw new Error(`case ${name} exited ${out.code}:\n${decoder.decode(out.stderr)}`);
    return decoder.decode(out.stdout);
  }

  const runInNetns = (name: string, opts?: CaseOptions) => withNetns((ns) => runCase(ns, name, opts));
  return { withNetns, spawnCase, runCase, runInNetns };
}

/** Reads a child's stdout up to the first newline (its "ready" signal), within a deadline. */
export async function firstLine(child: Deno.ChildProcess, timeoutMs: number): Promise<string> {
  const reader = child.stdout.getReader();
  let text = "";
  const timer = setTimeout(() => reader.cancel(), timeoutMs);
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return text.split("\n")[0];
}

/**
 * In the child (when {@link CASE_ENV} is set): runs that case from `cases`, then exits 0, unless
 * `keepRunning(name)` says the case leaves work running (e.g. a daemon that waits for a signal).
 * In the parent it does nothing.
 */
export async function serveChildCase(
  cases: Record<string, () => Promise<void> | void>,
  keepRunning: (name: string) => boolean = () => false,
): Promise<void> {
  const name = Deno.env.get(CASE_ENV);
  if (name === undefined) return;
  const body = cases[name];
  if (!body) throw new Error(`unknown case ${name}`);
  await body();
  if (!keepRunning(name)) Deno.exit(0);
}
