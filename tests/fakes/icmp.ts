/** Ping-sized IPv4 ICMP echo packets, crafted byte by byte with valid checksums, for in-process tests. */
import { requireIp } from "../../src/net/ip_address.ts";

function checksum(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4 ICMP echo request (`reply` = false) or reply from `src` to `dst`, with `payload` bytes of pattern. */
export function icmpEcho(src: string, dst: string, seq: number, reply = false, payload = 56): Uint8Array {
  const len = 20 + 8 + payload;
  const p = new Uint8Array(len);
  p[0] = 0x45;
  p[2] = len >> 8;
  p[3] = len & 0xff;
  p[4] = seq >> 8; // identification
  p[5] = seq & 0xff;
  p[8] = 64; // TTL
  p[9] = 1; // ICMP
  p.set(requireIp(src), 12);
  p.set(requireIp(dst), 16);
  const c = checksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  p[20] = reply ? 0 : 8;
  p[24] = 0x12; // identifier
  p[25] = 0x34;
  p[26] = seq >> 8;
  p[27] = seq & 0xff;
  for (let i = 0; i < payload; i++) p[28 + i] = (seq + i) & 0xff;
  const ic = checksum(p, 20, len);
  p[22] = ic >> 8;
  p[23] = ic & 0xff;
  return p;
}
