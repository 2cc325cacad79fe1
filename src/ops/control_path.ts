/** Where an instance's control socket lives: `/run/vpn/<tun>.sock` (root only), or under VPN_RUN_DIR. */

/** Folder of the control sockets; VPN_RUN_DIR is read when a path is needed, not at import. */
export function controlDir(): string {
  return Deno.env.get("VPN_RUN_DIR") ?? "/run/vpn";
}

/** The control socket path of the instance that owns TUN device `tun`. */
export function controlSocketPath(tun: string, dir: string = controlDir()): string {
  return `${dir}/${tun}.sock`;
}
