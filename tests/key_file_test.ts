import { assertEquals, assertMatch, assertNotEquals, assertThrows } from "./assert.ts";
import {
  createKeyFile,
  generateKey,
  KeyError,
  keyFromBase64,
  keyToBase64,
  readKeyFile,
} from "../src/config/key_file.ts";

Deno.test("generated keys are 32 random bytes in 44 characters of base64", () => {
  const a = generateKey(), b = generateKey();
  assertEquals(a.length, 32);
  assertNotEquals(a, b);
  const text = keyToBase64(a);
  assertMatch(text, /^[A-Za-z0-9+/]{43}=$/);
  assertEquals(keyFromBase64(text, "test"), a);
});

Deno.test("malformed keys are refused with the source named", () => {
  for (const bad of ["", "abc", "A".repeat(44), "A".repeat(42) + "==", "!".repeat(43) + "="]) {
    assertMatch(assertThrows(() => keyFromBase64(bad, "--key"), KeyError).message, /^--key: not a key/);
  }
  // Surrounding whitespace (a trailing newline in a file) is fine.
  assertEquals(keyFromBase64(" " + keyToBase64(new Uint8Array(32)) + "\n", "x"), new Uint8Array(32));
});

Deno.test("key files: created 0600, read back, refused when group or others can read", () => {
  const dir = Deno.makeTempDirSync({ prefix: "vpn-key-test-" });
  try {
    const path = `${dir}/server.key`;
    const key = createKeyFile(path);
    assertEquals(Deno.statSync(path).mode! & 0o777, 0o600);
    assertEquals(readKeyFile(path), key);
    assertMatch(assertThrows(() => createKeyFile(path), KeyError).message, /cannot create it/);
    for (const mode of [0o640, 0o604, 0o644]) {
      Deno.chmodSync(path, mode);
      const msg = assertThrows(() => readKeyFile(path), KeyError).message;
      assertEquals(
        msg,
        `key file ${path}: mode 0${
          mode.toString(8)
        } lets group or others read it; allowed: 0600 or 0400 (run: chmod 600 ${path})`,
      );
    }
    Deno.chmodSync(path, 0o400);
    assertEquals(readKeyFile(path), key);
    assertMatch(assertThrows(() => readKeyFile(`${dir}/none`), KeyError).message, /does not exist$/);
    Deno.writeTextFileSync(`${dir}/bad.key`, "hello\n", { mode: 0o600 });
    assertMatch(assertThrows(() => readKeyFile(`${dir}/bad.key`), KeyError).message, /bad\.key: not a key/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("key files owned by another user are refused, with the chown that fixes it", () => {
  const dir = Deno.makeTempDirSync({ prefix: "vpn-key-test-" });
  try {
    const path = `${dir}/server.key`;
    const key = createKeyFile(path);
    Deno.chownSync(path, 65534, null); // nobody: could read or replace the key
    assertEquals(
      assertThrows(() => readKeyFile(path), KeyError).message,
      `key file ${path}: owned by uid 65534, not by the user running vpn (uid ${Deno.uid()}); ` +
        `allowed: a file of this user (run: chown ${Deno.uid()} ${path})`,
    );
    Deno.chownSync(path, Deno.uid(), null);
    assertEquals(readKeyFile(path), key);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
