/** Domain-name syntax check (DNS search domains pushed by the server and written into resolv.conf). */

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * True for a domain name of dot-separated labels (letters, digits, `-`, `_`; 1 to 63 characters each, no
 * leading or trailing `-`), at most 253 characters, one optional trailing dot. Nothing else can reach a
 * resolver configuration line (no spaces, newlines or options).
 */
export function isDomainName(s: string): boolean {
  const name = s.endsWith(".") ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return false;
  return name.split(".").every((l) => LABEL.test(l));
}
