package bench

import (
	"crypto/ed25519"
	"errors"
	"runtime"
	"slices"
	"time"

	"librecord/crypto"
)

// Floor measures the protocol's crypto floor for a body of size bytes:
// what the server cannot avoid per request, one Ed25519 verify (the
// request) and one sign (the answer) and one box seal and open
// (precomputed keys) of that size: one Channel.Seal on one side and one
// Channel.Open on the other. It returns the median of a few rounds, in
// microseconds of CPU time (of this thread, where the system tells it;
// wall time elsewhere), each round lasting at least roundTime.
func Floor(size int, roundTime time.Duration) (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a, b, err := channelPair()
	if err != nil {
		return 0, err
	}
	defer a.Erase()
	defer b.Erase()
	body := make([]byte, size)
	for i := range body {
		body[i] = 'x'
	}
	const rounds = 5
	var perOp []float64
	for range rounds {
		n := 0
		start := time.Now()
		cpu0, cpuOK := threadCPU()
		for time.Since(start) < roundTime || n == 0 {
			env := a.Seal(body)
			if _, err := b.Open(env); err != nil {
				return 0, err
			}
			n++
		}
		spent := time.Since(start)
		// The thread's CPU clock may advance in coarse steps: a round it
		// did not see falls back to wall time.
		if cpu1, ok := threadCPU(); ok && cpuOK && cpu1 > cpu0 {
			spent = cpu1 - cpu0
		}
		perOp = append(perOp, float64(spent.Nanoseconds())/1e3/float64(n))
	}
	slices.Sort(perOp)
	return perOp[rounds/2], nil
}

// channelPair is a client channel and the server channel of the same
// session, made through a real hello exchange.
func channelPair() (client, server *crypto.Channel, err error) {
	ck := crypto.NewSessionKeys()
	sk := crypto.NewSessionKeys()
	_, identity, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, nil, err
	}
	hello := ck.ClientHello()
	clientPeer, err := crypto.ParseClientHello(hello)
	if err != nil {
		return nil, nil, err
	}
	serverPeer, _, err := crypto.ParseServerHello(sk.ServerHello(identity, hello), hello)
	if err != nil {
		return nil, nil, err
	}
	client, server = crypto.NewChannel(ck, serverPeer), crypto.NewChannel(sk, clientPeer)
	if client == nil || server == nil {
		return nil, nil, errors.New("crypto floor: no channel")
	}
	return client, server, nil
}
