// Package crypto holds every cryptographic operation of Librecord: session
// keys and sealed envelopes on the wire (PROTOCOL.md sections 2 and 6), the
// server identity, and what protects data at rest (storage keys, message
// blobs, password identifiers). Callers never handle nonces, counters or raw
// AEADs: they hand over bytes and get bytes or an error.
//
// On the wire: NewSessionKeys, the hellos (ClientHello, ParseClientHello,
// ServerHello, ParseServerHello), then a Channel (NewChannel) to Seal and
// Open envelopes. At rest: DeriveKey from the host passphrase, NewKey, and
// Key's Seal, Open, Wrap and Unwrap; HashPassword for password identifiers;
// NewSalt for both. NewID draws client message ids.
//
// Randomness is drawn inside the package from crypto/rand, and a failing
// random source is handled one way everywhere: a panic (crypto/rand.Read
// has not returned errors since Go 1.24; the runtime ends the program
// instead). So no function returns an error because of it: an error from
// this package is always about its input. No other package of the module
// imports crypto/rand (a test checks it; net/bench's tooling excepted).
package crypto
