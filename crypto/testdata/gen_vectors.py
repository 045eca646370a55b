#!/usr/bin/env python3
"""Writes the good_*/fail_* vectors of this directory from PROTOCOL.md alone.

An implementation independent of the Go code: NaCl box (X25519 + HSalsa20 +
XSalsa20 + Poly1305) is written out below over Python's `cryptography`
package (X25519, Ed25519, Poly1305); Salsa20 is in pure Python.
Run: python3 gen_vectors.py   (from this directory)
"""
import hashlib
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.poly1305 import Poly1305

RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
SIGMA = b"expand 32-byte k"


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def salsa_rounds(x):
    x = list(x)
    def qr(a, b, c, d):
        x[b] ^= rotl((x[a] + x[d]) & 0xFFFFFFFF, 7)
        x[c] ^= rotl((x[b] + x[a]) & 0xFFFFFFFF, 9)
        x[d] ^= rotl((x[c] + x[b]) & 0xFFFFFFFF, 13)
        x[a] ^= rotl((x[d] + x[c]) & 0xFFFFFFFF, 18)
    for _ in range(10):
        qr(0, 4, 8, 12); qr(5, 9, 13, 1); qr(10, 14, 2, 6); qr(15, 3, 7, 11)
        qr(0, 1, 2, 3); qr(5, 6, 7, 4); qr(10, 11, 8, 9); qr(15, 12, 13, 14)
    return x


def state(key, inp16):
    c = struct.unpack("<4I", SIGMA)
    k = struct.unpack("<8I", key)
    i = struct.unpack("<4I", inp16)
    return [c[0], k[0], k[1], k[2], k[3], c[1], i[0], i[1], i[2], i[3], c[2], k[4], k[5], k[6], k[7], c[3]]


def hsalsa20(key, inp16):
    z = salsa_rounds(state(key, inp16))
    return struct.pack("<8I", z[0], z[5], z[10], z[15], z[6], z[7], z[8], z[9])


def salsa20_stream(key, nonce8, n):
    out = b""
    ctr = 0
    while len(out) < n:
        s = state(key, nonce8 + struct.pack("<Q", ctr))
        z = salsa_rounds(s)
        out += struct.pack("<16I", *[(a + b) & 0xFFFFFFFF for a, b in zip(z, s)])
        ctr += 1
    return out[:n]


def secretbox_seal(msg, nonce24, key):
    stream = salsa20_stream(hsalsa20(key, nonce24[:16]), nonce24[16:], 32 + len(msg))
    ct = bytes(a ^ b for a, b in zip(msg, stream[32:]))
    return Poly1305.generate_tag(stream[:32], ct) + ct


def box_key(priv32, pub32):
    shared = X25519PrivateKey.from_private_bytes(priv32).exchange(X25519PublicKey.from_public_bytes(pub32))
    return hsalsa20(shared, bytes(16))


class Side:
    def __init__(self, tag):
        self.box_priv = hashlib.sha256(b"box " + tag).digest()
        self.sign_seed = hashlib.sha256(b"sign " + tag).digest()
        self.box_pub = X25519PrivateKey.from_private_bytes(self.box_priv).public_key().public_bytes(*RAW)
        self.signer = Ed25519PrivateKey.from_private_bytes(self.sign_seed)
        self.sign_pub = self.signer.public_key().public_bytes(*RAW)


def short_id(key):
    return hashlib.sha256(key).digest()[:8]


def seal(sender, recipient, seq, body, nonce, *, signed_override=None, signer=None, inner_override=None):
    signer_id, recipient_id = short_id(sender.sign_pub), short_id(recipient.box_pub)
    seq8 = struct.pack(">Q", seq)
    signed = b"S\x01" + signer_id + recipient_id + seq8 + body
    sig = (signer or sender.signer).sign(signed_override if signed_override is not None else signed)
    inner = inner_override if inner_override is not None else seq8 + body + sig
    return b"S\x01" + signer_id + recipient_id + nonce + secretbox_seal(inner, nonce, box_key(sender.box_priv, recipient.box_pub))


client, server, stranger = Side(b"client"), Side(b"server"), Side(b"stranger")
identity_seed = hashlib.sha256(b"identity").digest()
identity = Ed25519PrivateKey.from_private_bytes(identity_seed)
identity_pub = identity.public_key().public_bytes(*RAW)


def write(name, fields, comment):
    with open(name, "w") as f:
        f.write("comment: " + comment + "\n")
        for k, v in fields.items():
            f.write(f"{k}: {v.hex() if isinstance(v, bytes) else v}\n")


def keys():
    return {
        "client_box_priv": client.box_priv, "client_sign_seed": client.sign_seed,
        "server_box_priv": server.box_priv, "server_sign_seed": server.sign_seed,
    }


# Hellos (PROTOCOL.md 2.1).
client_hello = b"H\x01C" + client.box_pub + client.sign_pub
assert len(client_hello) == 67
hello_signed = b"librecord hello v1" + client_hello + server.box_pub + server.sign_pub
server_hello = b"H\x01S" + server.box_pub + server.sign_pub + identity_pub + identity.sign(hello_signed)
assert len(server_hello) == 163
hk = dict(keys(), identity_seed=identity_seed)
write("good_client_hello", dict(hk, client_hello=client_hello), "67 bytes: 'H' 0x01 'C' | X25519 pub | Ed25519 pub")
write("good_server_hello", dict(hk, client_hello=client_hello, signed=hello_signed, server_hello=server_hello),
      "163 bytes; signed = \"librecord hello v1\" | client hello | B_x25519_pub | B_ed25519_pub")


def bad_server_hello(name, b, expect, comment):
    write("fail_" + name, dict(hk, client_hello=client_hello, server_hello=b, expect=expect), comment)


def flip(b, i):
    return b[:i] + bytes([b[i] ^ 1]) + b[i + 1:]


bad_server_hello("server_hello_box_key_changed", flip(server_hello, 3), "bad_identity", "a session key swapped on the path")
bad_server_hello("server_hello_identity_changed", flip(server_hello, 70), "bad_identity", "identity key changed")
bad_server_hello("server_hello_sig_changed", flip(server_hello, 162), "bad_identity", "signature changed")
other_hello = b"H\x01C" + stranger.box_pub + stranger.sign_pub
other_sig = identity.sign(b"librecord hello v1" + other_hello + server.box_pub + server.sign_pub)
bad_server_hello("server_hello_for_other_client", server_hello[:99] + other_sig, "bad_identity",
                 "valid signature, but over another client's hello (a relayed server hello)")
nocontext_sig = identity.sign(client_hello + server.box_pub + server.sign_pub)
bad_server_hello("server_hello_no_context", server_hello[:99] + nocontext_sig, "bad_identity",
                 "signature without the \"librecord hello v1\" prefix")
bad_server_hello("server_hello_short", server_hello[:162], "bad_hello", "162 bytes")
bad_server_hello("server_hello_role_c", b"H\x01C" + server_hello[3:], "bad_hello", "role byte 'C' in a server hello")
bad_server_hello("server_hello_version_2", b"H\x02S" + server_hello[3:], "bad_hello", "version 2")
write("fail_client_hello_short", dict(hk, client_hello=client_hello[:66], expect="bad_hello"), "66 bytes")
write("fail_client_hello_long", dict(hk, client_hello=client_hello + b"\x00", expect="bad_hello"), "68 bytes")
write("fail_client_hello_role_s", dict(hk, client_hello=b"H\x01S" + client_hello[3:], expect="bad_hello"), "role 'S'")
write("fail_client_hello_low_order", dict(hk, client_hello=b"H\x01C" + bytes(32) + client.sign_pub, expect="bad_hello"),
      "X25519 key 0 (low order): the shared key would be public")

# Sealed envelopes (PROTOCOL.md 2.2), opened by the server unless said.
nonce = hashlib.sha256(b"nonce").digest()[:24]
body = '{"op":"send","id":7,"salon":"général","text":"<b>&</b>","cid":"k3J9"}'.encode()
good = seal(client, server, 5, body, nonce)


def sealed(name, envelope, comment, *, expect="ok", last=0, direction="client->server", seq=5, b=body, n=nonce):
    fields = dict(keys(), direction=direction, seq=seq, nonce=n, last_accepted=last, body=b, envelope=envelope, expect=expect)
    write(name, fields, comment)


sealed("good_sealed_client_to_server", good, "seq 5, nothing accepted before; the Go side re-seals it byte for byte")
sealed("good_sealed_gap", good, "seq 5 after seq 3: gaps are allowed", last=3)
sealed("good_sealed_empty_body", seal(client, server, 1, b"", nonce), "an empty body is still a valid envelope", seq=1, b=b"")
back = b'{"op":"ack","re":7,"msg":1042,"portions":3}'
sealed("good_sealed_server_to_client", seal(server, client, 1, back, nonce), "server to client, seq 1",
       direction="server->client", seq=1, b=back)
sealed("fail_sealed_replay", good, "seq 5 when 5 was already accepted", expect="crypto", last=5)
sealed("fail_sealed_old_seq", good, "seq 5 after 9", expect="crypto", last=9)
sealed("fail_sealed_seq_zero", seal(client, server, 0, body, nonce), "seq 0 is never greater than the last", expect="crypto", seq=0)
for i in (0, 1, 2, 9, 10, 17, 18, 41, 42, 57, 58, len(good) - 1):
    sealed(f"fail_sealed_flip_byte_{i:03d}", flip(good, i), f"byte {i} flipped", expect="crypto")
sealed("fail_sealed_truncated", good[:-1], "last byte missing", expect="crypto")
sealed("fail_sealed_header_only", good[:42], "the header and nothing else", expect="crypto")
sealed("fail_sealed_short", good[:41], "shorter than the 42-byte header", expect="short")
sealed("fail_sealed_wrong_signer_key", seal(client, server, 5, body, nonce, signer=stranger.signer),
       "box opens, signature by another Ed25519 key", expect="crypto")
sealed("fail_sealed_sig_without_ids", seal(client, server, 5, body, nonce, signed_override=struct.pack(">Q", 5) + body),
       "box opens, signature over seq | body only (ids not covered)", expect="crypto")
sealed("fail_sealed_sig_other_seq", seal(client, server, 5, body, nonce,
       signed_override=b"S\x01" + short_id(client.sign_pub) + short_id(server.box_pub) + struct.pack(">Q", 4) + body),
       "box opens, signature made for seq 4", expect="crypto")
sealed("fail_sealed_inner_too_short", seal(client, server, 5, body, nonce, inner_override=b"\x00" * 71),
       "box opens, 71 bytes inside: no room for seq and signature", expect="crypto")
sealed("fail_sealed_from_stranger", seal(stranger, server, 5, body, nonce), "another session's keys", expect="crypto")
sealed("fail_sealed_reflected", seal(server, client, 5, body, nonce),
       "the server's own envelope sent back to it", expect="crypto")
sealed("fail_sealed_kind_e", b"E" + good[1:], "kind byte 'E'", expect="crypto")
print("ok")
