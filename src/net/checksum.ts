/**
 * The Internet checksum (RFC 1071) over byte ranges, for rebuilding IPv4, TCP and UDP headers when
 * packets are split or merged. Sums are kept unfolded as plain numbers: 32768 words of 0xffff stay far
 * below 2^53, so a whole 64 KiB packet needs no folding until the end.
 */

/** One's-complement sum of the big-endian 16-bit words of `b[start, end)` added to `sum` (unfolded). */
export function sumBytes(b: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (i < end) sum += b[i] << 8; // an odd last byte is padded with a zero
  return sum;
}

/** Folds an unfolded sum to 16 bits (end-around carry). */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value for data whose unfolded sum (with the field zeroed) is `sum`. */
export function checksumOf(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/**
 * Unfolded sum of the TCP/UDP pseudo-header without its length: source and destination addresses
 * (`addrLen` bytes each, starting at `b[srcAt]`) and the protocol number. Add the length per segment.
 */
export function pseudoHeaderSum(b: Uint8Array, srcAt: number, addrLen: 4 | 16, protocol: number): number {
  return sumBytes(b, srcAt, srcAt + 2 * addrLen, protocol);
}
