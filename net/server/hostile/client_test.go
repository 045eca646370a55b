package hostile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	stdnet "net"
	"time"

	"librecord/crypto"
	"librecord/net"
)

// peer is a raw protocol client on one TCP connection from a chosen
// loopback source. Its methods return errors (attackers run in
// goroutines); it is not safe for concurrent use.
type peer struct {
	nc     stdnet.Conn
	fr     *net.FrameReader
	ch     *crypto.Channel
	nextID int64
}

// answer is one envelope from the server.
type answer struct {
	kind byte // 'S', 'E' or 'H'
	body map[string]any
	raw  []byte
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

func (a answer) num(k string) int64 {
	n, _ := a.body[k].(json.Number)
	v, _ := n.Int64()
	return v
}

func (a answer) String() string { return fmt.Sprintf("%c %s", a.kind, a.raw) }

// errRefused is a plain error answering a hello (a full source).
type errRefused struct{ a answer }

func (e errRefused) Error() string { return "hello refused: " + e.a.String() }

func dialFrom(addr, local string) (*peer, error) {
	d := stdnet.Dialer{Timeout: 10 * time.Second, LocalAddr: &stdnet.TCPAddr{IP: stdnet.ParseIP(local)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &peer{nc: nc, fr: net.NewFrameReader(bufio.NewReader(nc), 0)}, nil
}

func (p *peer) close() { p.nc.Close() }

func (p *peer) write(payload []byte) error {
	p.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := p.nc.Write(net.AppendFrame(nil, payload))
	return err
}

// hello exchanges session keys; errRefused if the server answers with a
// plain error.
func (p *peer) hello() error {
	keys := crypto.NewSessionKeys()
	ch := keys.ClientHello()
	if err := p.write(ch); err != nil {
		return err
	}
	a, err := p.read(20 * time.Second)
	if err != nil {
		return err
	}
	if a.kind != 'H' {
		return errRefused{a}
	}
	peerKeys, _, err := crypto.ParseServerHello(a.raw, ch)
	if err != nil {
		return err
	}
	p.ch = crypto.NewChannel(keys, peerKeys)
	return nil
}

func (p *peer) read(wait time.Duration) (answer, error) {
	p.nc.SetReadDeadline(time.Now().Add(wait))
	payload, _, err := p.fr.Next()
	if err != nil {
		return answer{}, err
	}
	a := answer{kind: payload[0]}
	switch payload[0] {
	case 'H':
		a.raw = append([]byte(nil), payload...)
		return a, nil
	case 'E':
		a.raw, err = crypto.ParsePlainError(payload)
	case 'S':
		if p.ch == nil {
			return a, errors.New("sealed envelope before any hello")
		}
		a.raw, err = p.ch.Open(payload)
	default:
		return a, fmt.Errorf("unknown envelope kind %q", payload[0])
	}
	if err != nil {
		return a, err
	}
	a.raw = append([]byte(nil), a.raw...)
	dec := json.NewDecoder(bytes.NewReader(a.raw))
	dec.UseNumber()
	return a, dec.Decode(&a.body)
}

// request sends op with fields and returns its id.
func (p *peer) request(op string, fields map[string]any) (int64, error) {
	p.nextID++
	m := map[string]any{"op": op, "id": p.nextID}
	for k, v := range fields {
		m[k] = v
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return 0, err
	}
	return p.nextID, p.write(p.ch.Seal(bytes.TrimSpace(b.Bytes())))
}

// call sends a request and reads until its answer, dropping others.
func (p *peer) call(op string, fields map[string]any) (answer, error) {
	id, err := p.request(op, fields)
	if err != nil {
		return answer{}, err
	}
	for {
		a, err := p.read(30 * time.Second)
		if err != nil {
			return a, err
		}
		if a.num("re") == id || (a.kind == 'E' && a.num("re") == 0) {
			return a, nil
		}
	}
}

// login logs in with password and returns the answer (connected or an
// error).
func (p *peer) login(password string) (answer, error) {
	return p.call("login", map[string]any{"password": password})
}

// moveTo opens a new connection from local carrying p's session and
// resumes it there.
func (p *peer) moveTo(addr, local string) (*peer, answer, error) {
	n, err := dialFrom(addr, local)
	if err != nil {
		return nil, answer{}, err
	}
	n.ch, n.nextID = p.ch, p.nextID
	a, err := n.call("resume", nil)
	return n, a, err
}

// code is the error code of an answer ("" if not an error).
func code(a answer) string {
	if a.str("op") != "error" {
		return ""
	}
	return a.str("code")
}
