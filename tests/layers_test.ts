/**
 * The layer rules of the README's "Repository layout", checked on the import statements of every file
 * under src/ and ffi/ (static, `export ... from` and `import("...")` with a literal path): no import
 * circles, ffi/ a leaf, and each folder importing only the layers below it.
 */
import { assertEquals } from "./assert.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** What each folder may import besides itself (paths relative to the repository). */
const MAY_IMPORT: Record<string, string[]> = {
  "ffi": [],
  "src/net": [],
  "src/protocol": ["src/net"],
  "src/ops": ["src/net", "src/protocol", "ffi"],
  "src/config": ["src/net", "src/protocol", "src/ops", "src/dataplane"],
  "src/dataplane": ["src/net", "src/protocol", "src/ops", "ffi"],
  "src/host": ["src/net", "src/protocol", "src/ops", "src/config", "ffi"],
  "src/roles": ["src/net", "src/protocol", "src/ops", "src/config", "src/dataplane", "src/host", "ffi"],
};

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(ROOT + dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...files(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Repository-relative paths of the local modules `file` imports. */
function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(ROOT + file);
  const specs = [
    ...text.matchAll(/^(?:import|export)\s[^;]*?from\s+["']([^"']+)["']/gms),
    ...text.matchAll(/^import\s+["']([^"']+)["']/gm),
    ...text.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g),
  ].map((m) => m[1]);
  return specs.filter((s) => s.startsWith(".")).map((s) =>
    new URL(s, `file://${ROOT}${file}`).pathname.slice(ROOT.length)
  );
}

const all = [...files("src"), ...files("ffi")];
const graph = new Map(all.map((f) => [f, importsOf(f)]));

function folderOf(file: string): string {
  if (file.startsWith("ffi/")) return "ffi";
  const parts = file.split("/");
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : file;
}

Deno.test("no import circles among src/ and ffi/", () => {
  const state = new Map<string, "open" | "done">();
  const circles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "open") {
      circles.push([...path.slice(path.indexOf(f)), f].join(" -> "));
      return;
    }
    state.set(f, "open");
    for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, "done");
  };
  for (const f of all) visit(f, []);
  assertEquals(circles, []);
});

Deno.test("ffi/ imports nothing outside ffi/, and every folder only the layers below it", () => {
  const wrong: string[] = [];
  for (const [f, deps] of graph) {
    const from = folderOf(f);
    const allowed = MAY_IMPORT[from];
    if (!allowed) continue; // src/cli.ts and src/version.ts sit on top
    for (const d of deps) {
      const to = folderOf(d);
      if (to !== from && !allowed.includes(to)) wrong.push(`${f} -> ${d}`);
    }
  }
  assertEquals(wrong, []);
});
