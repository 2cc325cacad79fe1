/** Where an instance's control socket lives: `/run/vpn/<tun>.sock` (root only). */

/** Folder of the control sockets. */
export const CONTROL_DIR = Deno.env.get("VPN_RUN_DIR") ?? "/run/vpn";

/** The control socket path of the instance that owns TUN device `tun`. */
export function controlSocketPath(tun: string, dir: string = CONTROL_DIR): string {
  return `${dir}/${tun}.sock`;
}
