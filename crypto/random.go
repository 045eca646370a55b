package crypto

import "crypto/rand"

// random fills b from crypto/rand, the only source of randomness of this
// package. It panics if the system's source fails: since Go 1.24
// crypto/rand.Read never returns an error (the runtime ends the program
// instead), so no caller could do better than stop, and no function of
// this package returns an error for it.
func random(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("crypto: the system's random source failed: " + err.Error())
	}
}
