/** Standard base64 without a dependency (btoa works on binary strings). */

/** Encode bytes as standard padded base64. */
export function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin);
}
