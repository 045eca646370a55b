import test from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { root, unhex } from "./setup.js";
import { FrameReader, encodeFrame, unb64url, b64url } from "../static/wire.js";

const dir = new URL("net/testdata/", root);

// The frame vectors of net/testdata, as the Go reader runs them.
for (const name of readdirSync(dir).filter((n) => /^(good|fail)_/.test(n))) {
  test("vector " + name, () => {
    const raw = readFileSync(new URL(name, dir), "latin1");
    const cut = raw.indexOf("\n--\n");
    assert.ok(cut >= 0);
    const head = {};
    for (const l of raw.slice(0, cut).split("\n")) {
      const i = l.indexOf(": ");
      head[l.slice(0, i)] = l.slice(i + 2);
    }
    const fr = new FrameReader(head["max-portions"] ? Number(head["max-portions"]) : undefined);
    // Push in small pieces: a WebSocket message may end anywhere.
    const stream = raw.slice(cut + 4);
    const items = [];
    for (let i = 0; i < stream.length; i += 7) items.push(...fr.push(stream.slice(i, i + 7)));
    if (name.startsWith("good_")) {
      assert.equal(items[0].error, undefined, items[0].error && items[0].error.message);
      assert.deepEqual(items[0].payload, unhex(head["payload-hex"]));
      assert.equal(items[0].portions, Number(head.portions));
      return;
    }
    assert.ok(items[0].error, "no error");
    assert.equal(items[0].error.message, head.error);
    assert.equal(items[0].error.fatal, head.fatal === "true");
    if (head["then-hex"]) assert.deepEqual(items[1].payload, unhex(head["then-hex"]));
  });
}

test("encodeFrame is the Go example", () => {
  const hello = unhex("4801430056557f4a55e2f912c6044be42b1427004829c27a5547c3e04465d6f06866136a5248e280af9b8a3c074407eca9a29bf46e1659bac59cdeaea507ccbe35f7b0");
  assert.equal(encodeFrame(hello),
    "MESS1//SAFDAFZVf0pV4vkSxgRL5CsUJwBIKcJ6VUfD4ERl1vBoZhNqUkjigK-bijwHRAfsqaKb9G4WWbrFnN6upQfMvjX3sA\\\\MESS1\n(ENDMESS)\n");
});

test("round trip of every length up to three portions", () => {
  for (let n = 1; n <= 600; n++) {
    const p = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 255);
    const items = new FrameReader().push(encodeFrame(p));
    assert.equal(items.length, 1);
    assert.deepEqual(items[0].payload, p);
    assert.equal(unb64url(b64url(p)).length, n);
  }
});

test("strict base64url", () => {
  assert.deepEqual(unb64url("aGk"), new TextEncoder().encode("hi"));
  assert.equal(unb64url("aGl"), null); // unused bits set
  assert.equal(unb64url("aGk="), null);
  assert.equal(unb64url("a+k"), null);
  assert.equal(unb64url("aGlpa"), null); // 1 mod 4
});
