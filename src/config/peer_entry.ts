/**
 * The text of `[[server.peers]]` entries, for `vpn peer add` and `vpn peer remove`: an entry is appended at
 * the end of the file, and one is removed by cutting exactly its lines, so every other byte (comments,
 * order, spacing) stays as the user wrote it.
 */

/** What `vpn peer add` writes for one peer. */
export interface PeerEntry {
  readonly name: string;
  readonly address: string;
  readonly keyFile: string;
  readonly routes: readonly string[];
}

/** `text` with the entry appended: the old text byte for byte, a blank line, then the entry. */
export function appendPeerEntry(text: string, e: PeerEntry): string {
  const lines = [
    "[[server.peers]]",
    `name = ${JSON.stringify(e.name)}`,
    `address = ${JSON.stringify(e.address)}`,
    `key_file = ${JSON.stringify(e.keyFile)}`,
  ];
  if (e.routes.length > 0) lines.push(`routes = [${e.routes.map((r) => JSON.stringify(r)).join(", ")}]`);
  const sep = text === "" ? "" : text.endsWith("\n") ? "\n" : "\n\n";
  return text + sep + lines.join("\n") + "\n";
}

const HEADER = /^\s*\[\[?\s*([A-Za-z0-9_."-]+)\s*\]\]?/;
const PEERS_HEADER = /^\s*\[\[\s*server\s*\.\s*peers\s*\]\]/;

/**
 * `text` without the `index`-th `[[server.peers]]` table: its header line up to the next table header (or
 * the end, then with the blank line `appendPeerEntry` put before it). Null when there is no such table.
 * The caller parses the result and checks that exactly that peer went away.
 */
export function removePeerEntry(text: string, index: number): string | null {
  const lines = text.split("\n");
  let seen = -1, start = -1, end = lines.length;
  for (let i = 0; i < lines.length; i++) {
    if (start < 0) {
      if (PEERS_HEADER.test(lines[i]) && ++seen === index) start = i;
    } else if (HEADER.test(lines[i])) {
      end = i;
      break;
    }
  }
  if (start < 0) return null;
  // Comment lines right above the next header belong to it, not to the entry being removed.
  if (end < lines.length) {
    while (end > start + 1 && /^\s*#/.test(lines[end - 1])) end--;
  } else {
    // The last table: keep the final newline, and drop the blank line written before the entry.
    if (end > start + 1 && lines[end - 1] === "") end--;
    if (start > 0 && lines[start - 1].trim() === "") start--;
  }
  lines.splice(start, end - start);
  return lines.join("\n");
}
