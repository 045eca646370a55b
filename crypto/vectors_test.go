package crypto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vector is one testdata/good_* or fail_* file: "key: value" lines, values
// in hex except seq, last_accepted, direction, expect and comment. The files
// are written by testdata/gen_vectors.py, an implementation of PROTOCOL.md
// independent of this package (Python, its own Salsa20 and NaCl box).
type vector map[string]string

func (v vector) bytes(t *testing.T, key string) []byte {
	t.Helper()
	s, ok := v[key]
	if !ok {
		t.Fatalf("vector lacks %q", key)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return b
}

func (v vector) uint(t *testing.T, key string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(v[key], 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return n
}

func loadVectors(t *testing.T) map[string]vector {
	t.Helper()
	var files []string
	for _, pat := range []string{"testdata/good_*", "testdata/fail_*"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("only %d vectors in testdata (run testdata/gen_vectors.py)", len(files))
	}
	out := map[string]vector{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v := vector{}
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			k, val, ok := strings.Cut(l, ": ")
			if !ok {
				t.Fatalf("%s: bad line %q", f, l)
			}
			v[k] = val
		}
		out[filepath.Base(f)] = v
	}
	return out
}

// sides rebuilds both ends' session keys from a vector.
func sides(t *testing.T, v vector) (client, server *SessionKeys) {
	client = sessionKeysFromSeeds(v.bytes(t, "client_box_priv"), v.bytes(t, "client_sign_seed"))
	server = sessionKeysFromSeeds(v.bytes(t, "server_box_priv"), v.bytes(t, "server_sign_seed"))
	return client, server
}

func peerOf(k *SessionKeys) PeerKeys { return PeerKeys{Box: k.boxPub, Sign: k.signPub} }

func TestVectors(t *testing.T) {
	for name, v := range loadVectors(t) {
		t.Run(name, func(t *testing.T) {
			good := strings.HasPrefix(name, "good_")
			client, server := sides(t, v)
			switch {
			case strings.Contains(name, "server_hello"):
				identity := ed25519.NewKeyFromSeed(v.bytes(t, "identity_seed"))
				ch := v.bytes(t, "client_hello")
				sh := v.bytes(t, "server_hello")
				if good {
					if got := server.ServerHello(identity, ch); !bytes.Equal(got, sh) {
						t.Fatalf("ServerHello:\n got %x\nwant %x", got, sh)
					}
					if got := helloSigned(ch, server.boxPub[:], server.signPub[:]); !bytes.Equal(got, v.bytes(t, "signed")) {
						t.Fatalf("signed bytes:\n got %x\nwant %x", got, v.bytes(t, "signed"))
					}
				}
				peer, id, err := ParseServerHello(sh, ch)
				switch v["expect"] {
				case "":
					if err != nil || peer != peerOf(server) || !id.Equal(identity.Public()) {
						t.Fatalf("ParseServerHello: %v", err)
					}
				case "bad_identity":
					if !errors.Is(err, ErrBadIdentity) {
						t.Fatalf("got %v, want ErrBadIdentity", err)
					}
				case "bad_hello":
					if !errors.Is(err, ErrBadHello) {
						t.Fatalf("got %v, want ErrBadHello", err)
					}
				default:
					t.Fatalf("unknown expect %q", v["expect"])
				}
			case strings.Contains(name, "client_hello"):
				ch := v.bytes(t, "client_hello")
				peer, err := ParseClientHello(ch)
				if good {
					if got := client.ClientHello(); !bytes.Equal(got, ch) {
						t.Fatalf("ClientHello:\n got %x\nwant %x", got, ch)
					}
					if err != nil || peer != peerOf(client) {
						t.Fatalf("ParseClientHello: %v", err)
					}
				} else if !errors.Is(err, ErrBadHello) {
					t.Fatalf("got %v, want ErrBadHello", err)
				}
			case strings.Contains(name, "sealed"):
				sender, recipient := client, server
				if v["direction"] == "server->client" {
					sender, recipient = server, client
				}
				env := v.bytes(t, "envelope")
				if good {
					// Sealing with the vector's nonce gives the same bytes.
					out := NewChannel(sender, peerOf(recipient))
					out.sendSeq = v.uint(t, "seq") - 1
					var nonce [24]byte
					copy(nonce[:], v.bytes(t, "nonce"))
					if got := out.seal(v.bytes(t, "body"), &nonce); !bytes.Equal(got, env) {
						t.Fatalf("seal:\n got %x\nwant %x", got, env)
					}
				}
				in := NewChannel(recipient, peerOf(sender))
				in.recvSeq = v.uint(t, "last_accepted")
				body, err := in.Open(env)
				switch v["expect"] {
				case "ok":
					if err != nil || !bytes.Equal(body, v.bytes(t, "body")) {
						t.Fatalf("Open = %q, %v; want %q", body, err, v.bytes(t, "body"))
					}
					if in.recvSeq != v.uint(t, "seq") {
						t.Fatalf("last accepted seq %d, want %s", in.recvSeq, v["seq"])
					}
				case "crypto":
					if !errors.Is(err, errCrypto) {
						t.Fatalf("got %v, want errCrypto", err)
					}
				case "short":
					if !errors.Is(err, ErrShortEnvelope) {
						t.Fatalf("got %v, want ErrShortEnvelope", err)
					}
				default:
					t.Fatalf("unknown expect %q", v["expect"])
				}
				if !good && in.recvSeq != v.uint(t, "last_accepted") {
					t.Fatal("a refused envelope moved the seq counter")
				}
			default:
				t.Fatal("vector of unknown kind")
			}
		})
	}
}
