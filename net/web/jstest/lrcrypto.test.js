import test from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { root, vector, unhex } from "./setup.js";

const lc = await import("../static/lrcrypto.js");

test("server hello vector", () => {
  const v = vector("crypto/testdata/good_server_hello");
  const got = lc.parseServerHello(unhex(v.server_hello), unhex(v.client_hello));
  assert.equal(got.identity.length, 32);
  const client = lc.sessionKeysFrom(unhex(v.client_box_priv), unhex(v.client_sign_seed));
  assert.deepEqual(lc.clientHello(client), unhex(v.client_hello));
});

test("client hello vector", () => {
  const v = vector("crypto/testdata/good_client_hello");
  const keys = lc.sessionKeysFrom(unhex(v.client_box_priv), unhex(v.client_sign_seed));
  assert.deepEqual(lc.clientHello(keys), unhex(v.client_hello || v.hello || v.bytes));
});

// The sealed vectors: the page opens every good one it is the recipient
// of, re-seals the client's byte for byte, and refuses every failing one.
const dir = new URL("crypto/testdata/", root);
for (const name of readdirSync(dir).filter((n) => /^(good|fail)_sealed_/.test(n))) {
  test("vector " + name, () => {
    const v = vector("crypto/testdata/" + name);
    const client = lc.sessionKeysFrom(unhex(v.client_box_priv), unhex(v.client_sign_seed));
    const server = lc.sessionKeysFrom(unhex(v.server_box_priv), unhex(v.server_sign_seed));
    const toServer = v.direction === "client->server";
    const [me, peer] = toServer ? [server, client] : [client, server];
    const ch = new lc.Channel(me, { box: peer.box.publicKey, sign: peer.sign.publicKey });
    ch.accepted = BigInt(v.last_accepted || 0);
    const env = unhex(v.envelope);
    if (name.startsWith("fail_")) {
      assert.throws(() => ch.open(env), lc.CryptoError);
      return;
    }
    assert.deepEqual(ch.open(env), unhex(v.body));
    if (toServer) {
      const sender = new lc.Channel(client, { box: server.box.publicKey, sign: server.sign.publicKey });
      assert.deepEqual(sender.sealSeq(unhex(v.body), BigInt(v.seq), unhex(v.nonce)), env);
    }
  });
}

test("seal then open, seq increases, replay refused", () => {
  const a = lc.newSessionKeys(), b = lc.newSessionKeys();
  const ab = new lc.Channel(a, { box: b.box.publicKey, sign: b.sign.publicKey });
  const ba = new lc.Channel(b, { box: a.box.publicKey, sign: a.sign.publicKey });
  const body = new TextEncoder().encode('{"op":"login","id":1}');
  const e1 = ab.seal(body), e2 = ab.seal(body);
  assert.deepEqual(ba.open(e2), body);
  assert.throws(() => ba.open(e1), lc.CryptoError); // older seq
  assert.throws(() => ba.open(e2), lc.CryptoError); // replay
  ab.erase();
  assert.throws(() => ab.seal(body), lc.CryptoError);
});

test("fingerprint as OpenSSH prints it", () => {
  // The Ed25519 key of the seed 00 01 .. 1f, docs/protocol.md section 3.
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
  const pub = globalThis.nacl.sign.keyPair.fromSeed(seed).publicKey;
  assert.equal(lc.fingerprint(pub), "SHA256:Vkdap1RjR0wChd9dvyvKtz2mUTWIOem3dIGy6rEHcIw");
});

for (const name of readdirSync(dir).filter((n) => n.startsWith("fail_server_hello_"))) {
  test("vector " + name, () => {
    const v = vector("crypto/testdata/" + name);
    assert.throws(() => lc.parseServerHello(unhex(v.server_hello), unhex(v.client_hello)), lc.CryptoError);
  });
}
