/** The Internet checksum helpers: the word loop against a byte-by-byte reference, at every offset and length. */
import { assertEquals } from "./assert.ts";
import { checksumOf, foldSum, sumBytes } from "../src/net/checksum.ts";

function reference(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i] << 8) | (i + 1 < end ? b[i + 1] : 0);
  return foldSum(sum);
}

Deno.test("checksum: sumBytes folds to the reference sum for every offset and length up to 300, and 64 KiB", () => {
  const buf = new Uint8Array(65536 + 16);
  for (let at = 0; at < buf.length; at += 4096) crypto.getRandomValues(buf.subarray(at, at + 4096));
  for (let start = 0; start < 9; start++) {
    for (let len = 0; len <= 300; len++) {
      assertEquals(foldSum(sumBytes(buf, start, start + len)), reference(buf, start, start + len));
    }
  }
  assertEquals(foldSum(sumBytes(buf, 3, 3 + 65535)), reference(buf, 3, 3 + 65535));
  // A view at an odd byte offset of its buffer, and a running sum carried in.
  const view = buf.subarray(5, 5 + 1500);
  assertEquals(foldSum(sumBytes(view, 1, 1401, 0x1234)), foldSum(reference(view, 1, 1401) + 0x1234));
  const ones = new Uint8Array(64).fill(0xff);
  assertEquals(checksumOf(sumBytes(ones, 0, 64)), 0);
});
