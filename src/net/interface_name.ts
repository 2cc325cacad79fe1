/**
 * The one rule for the interface names vpn accepts from outside (TUN name, NAT interface, `vpn status
 * --tun`): 1 to 15 bytes (Linux's IFNAMSIZ less the NUL) of A-Z a-z 0-9 _ . -, not "." or "..". Stricter
 * than the kernel, so a name is also safe in a path (/run/vpn/NAME.sock, /proc/sys/...) and in an nft rule.
 * `ffi/` keeps the kernel's own guard for its structs; this is the policy.
 */

/** Longest interface name in bytes. */
export const INTERFACE_NAME_MAX = 15;

/** What a valid name looks like, for "allowed: ..." messages. */
export const INTERFACE_NAME_RULE =
  `an interface name of 1 to ${INTERFACE_NAME_MAX} characters from A-Z a-z 0-9 _ . -`;

/** Why `name` is not an acceptable interface name, or null if it is. */
export function invalidInterfaceName(name: string): string | null {
  if (name === "") return "is empty";
  if (name.length > INTERFACE_NAME_MAX) {
    return `is ${name.length} characters long; at most ${INTERFACE_NAME_MAX}`;
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) return "may contain only A-Z a-z 0-9 _ . -";
  if (name === "." || name === "..") return "is reserved";
  return null;
}
