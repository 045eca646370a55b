// Package crypto holds every cryptographic operation of Librecord: session
// keys and sealed envelopes on the wire (PROTOCOL.md sections 2 and 6), the
// server identity, and what protects data at rest (storage keys, message
// blobs, password identifiers). Callers never handle nonces, counters or raw
// AEADs: they hand over bytes and get bytes or an error.
package crypto
