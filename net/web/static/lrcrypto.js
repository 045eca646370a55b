// lrcrypto.js: the page's cryptography, with the verbs of the Go crypto
// package (session keys, hellos, sealed envelopes, fingerprints). Every
// primitive comes from the vendored audited libraries: tweetnacl 1.0.3
// (X25519 + XSalsa20-Poly1305 box, Ed25519), loaded as a classic script
// that sets globalThis.nacl, and @noble/hashes (SHA-256). Randomness is
// crypto.getRandomValues. Callers never pass a nonce or pick a length.

import { sha256 } from "./vendor/noble-hashes/sha2.js";
import { b64std } from "./wire.js";

const nacl = globalThis.nacl;
if (!nacl) throw new Error("tweetnacl is not loaded");

export const VERSION = 0x01;
export const KIND_HELLO = 0x48; // 'H'
export const KIND_SEALED = 0x53; // 'S'
export const KIND_PLAIN_ERROR = 0x45; // 'E'
const HEADER = 2 + 8 + 8 + 24;
const SEQ = 8, SIG = 64;
const HELLO_CONTEXT = new TextEncoder().encode("librecord hello v1");

/** Any failure to open a sealed envelope; says nothing about which check. */
export class CryptoError extends Error {}

/** randomBytes returns n bytes from crypto.getRandomValues. */
export function randomBytes(n) {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}

function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/** shortID is the first 8 bytes of SHA-256 of a key (signer and recipient ids). */
export function shortID(key) { return sha256(key).slice(0, 8); }

/** fingerprint is "SHA256:" + standard base64 without padding of SHA-256(identity key). */
export function fingerprint(identity) { return "SHA256:" + b64std(sha256(identity)); }

/** newSessionKeys makes fresh X25519 and Ed25519 pairs for one session. */
export function newSessionKeys() {
  return { box: nacl.box.keyPair(), sign: nacl.sign.keyPair() };
}

/** sessionKeysFrom rebuilds keys from their secrets (test vectors). */
export function sessionKeysFrom(boxSecret, signSeed) {
  return { box: nacl.box.keyPair.fromSecretKey(boxSecret), sign: nacl.sign.keyPair.fromSeed(signSeed) };
}

/** clientHello is 'H' 0x01 'C' | X25519 public | Ed25519 public (67 bytes). */
export function clientHello(keys) {
  return concat(Uint8Array.of(KIND_HELLO, VERSION, 0x43), keys.box.publicKey, keys.sign.publicKey);
}

/**
 * parseServerHello checks a server hello against the client hello it
 * answers and returns the server's session keys and identity key; it
 * throws CryptoError when the identity signature does not verify.
 */
export function parseServerHello(b, hello) {
  if (b.length !== 163 || b[0] !== KIND_HELLO || b[1] !== VERSION || b[2] !== 0x53) {
    throw new CryptoError("malformed server hello");
  }
  const box = b.slice(3, 35), sign = b.slice(35, 67), identity = b.slice(67, 99), sig = b.slice(99, 163);
  if (!nacl.sign.detached.verify(concat(HELLO_CONTEXT, hello, box, sign), sig, identity)) {
    throw new CryptoError("server hello signature does not verify");
  }
  return { peer: { box, sign }, identity };
}

/** envelopeKind returns the kind byte of a payload, or 0 if it is not version 1. */
export function envelopeKind(p) {
  return p.length >= 2 && p[1] === VERSION ? p[0] : 0;
}

/**
 * Channel seals and opens the envelopes of one session, keeping both seq
 * counters; keep it across reconnects (PROTOCOL.md 2.2, 5).
 */
export class Channel {
  constructor(own, peer) {
    const shared = nacl.scalarMult(own.box.secretKey, peer.box);
    if (shared.every((x) => x === 0)) throw new CryptoError("low-order server key");
    this.key = nacl.box.before(peer.box, own.box.secretKey);
    this.own = own;
    this.ownSigner = shortID(own.sign.publicKey);
    this.ownRecipient = shortID(own.box.publicKey);
    this.peerSign = peer.sign;
    this.peerSigner = shortID(peer.sign);
    this.peerRecipient = shortID(peer.box);
    this.sent = 0n;
    this.accepted = 0n;
    this.erased = false;
  }

  /** signerID is this side's signer_id, which names the session to the server. */
  signerID() { return this.ownSigner; }

  /** seal returns the sealed envelope of body with the next seq. */
  seal(body, nonce = randomBytes(24)) {
    if (this.erased) throw new CryptoError("session keys erased");
    this.sent += 1n;
    return this.sealSeq(body, this.sent, nonce);
  }

  sealSeq(body, seq, nonce) {
    const head = concat(Uint8Array.of(KIND_SEALED, VERSION), this.ownSigner, this.peerRecipient);
    const seqb = new Uint8Array(SEQ);
    new DataView(seqb.buffer).setBigUint64(0, seq);
    const sig = nacl.sign.detached(concat(head, seqb, body), this.own.sign.secretKey);
    return concat(head, nonce, nacl.box.after(concat(seqb, body, sig), nonce, this.key));
  }

  /** open checks an envelope from the peer and returns its body; CryptoError on any failure. */
  open(env) {
    if (this.erased || env.length < HEADER + 16 + SEQ + SIG) throw new CryptoError("envelope rejected");
    if (env[0] !== KIND_SEALED || env[1] !== VERSION ||
        !equal(env.subarray(2, 10), this.peerSigner) || !equal(env.subarray(10, 18), this.ownRecipient)) {
      throw new CryptoError("envelope rejected");
    }
    const inner = nacl.box.open.after(env.subarray(HEADER), env.subarray(18, HEADER), this.key);
    if (!inner || inner.length < SEQ + SIG) throw new CryptoError("envelope rejected");
    const seqb = inner.subarray(0, SEQ), body = inner.subarray(SEQ, inner.length - SIG);
    const sig = inner.subarray(inner.length - SIG);
    if (!nacl.sign.detached.verify(concat(env.subarray(0, 18), seqb, body), sig, this.peerSign)) {
      throw new CryptoError("envelope rejected");
    }
    const seq = new DataView(seqb.buffer, seqb.byteOffset, SEQ).getBigUint64(0);
    if (seq <= this.accepted) throw new CryptoError("envelope rejected");
    this.accepted = seq;
    return body.slice();
  }

  /** erase overwrites the session's secrets; the channel no longer seals or opens. */
  erase() {
    if (this.erased) return;
    this.erased = true;
    this.key.fill(0);
    this.own.box.secretKey.fill(0);
    this.own.sign.secretKey.fill(0);
  }
}
