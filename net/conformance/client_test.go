package conformance

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"librecord/net/testkit"
)

const readTimeout = 10 * time.Second

var b64 = base64.RawURLEncoding

// keys is one side's session key material.
type keys struct {
	xpub, xpriv *[32]byte
	edpub       ed25519.PublicKey
	edpriv      ed25519.PrivateKey
}

func newKeys(t *testing.T) *keys {
	xpub, xpriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edpub, edpriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &keys{xpub, xpriv, edpub, edpriv}
}

func id8(b []byte) []byte { h := sha256.Sum256(b); return h[:8] }

// session holds what a client keeps across connections (section 5).
type session struct {
	me       *keys
	srvX     [32]byte
	srvEd    ed25519.PublicKey
	srvIdent ed25519.PublicKey
	seq      uint64 // last seq sent
	rseq     uint64 // last seq accepted from the server
	nextID   int64
	hello    []byte // the server hello bytes
}

type client struct {
	t    *testing.T
	srv  *server
	conn net.Conn
	r    *bufio.Reader
	sess *session
	// lastSeqs records the seq of every sealed envelope received
	lastSeqs []uint64
}

// msg is one envelope received from the server.
type msg struct {
	kind     byte // 'H', 'S', 'E'
	raw      []byte
	body     obj
	bodyRaw  []byte
	portions int
	seq      uint64
}

type obj map[string]any

func dial(t *testing.T, s *server) *client {
	t.Helper()
	return dialFrom(t, s, "")
}

func dialFrom(t *testing.T, s *server, local string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	var conn net.Conn
	var err error
	if overWebSocket() {
		conn, err = dialWebSocket(&d, s.webURL)
	} else {
		conn, err = d.Dial("tcp", s.addr)
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &client{t: t, srv: s, conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	t.Cleanup(func() { conn.Close() })
	return c
}

func (c *client) close() { c.conn.Close() }

func (c *client) writeRaw(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) writeLines(lines ...string) {
	c.t.Helper()
	c.writeRaw(strings.Join(lines, "\n") + "\n")
}

// frameLines cuts data into the portion lines of one frame, (ENDMESS) included.
func frameLines(data []byte) []string {
	text := b64.EncodeToString(data)
	var lines []string
	for i := 0; len(text) > 0; i++ {
		n := min(256, len(text))
		lines = append(lines, portion(i+1, text[:n]))
		text = text[n:]
	}
	return append(lines, "(ENDMESS)")
}

func portion(i int, s string) string {
	return fmt.Sprintf("MESS%d//%s\\\\MESS%d", i, s, i)
}

// sendFrame writes data as a frame and returns its portion count.
func (c *client) sendFrame(data []byte) int {
	c.t.Helper()
	lines := frameLines(data)
	c.writeLines(lines...)
	return len(lines) - 1
}

var errClosed = errors.New("connection closed")

// readFrame reads one frame and checks it is laid out exactly as section 1
// says. It returns errClosed on EOF before any line of a frame.
func (c *client) readFrame(timeout time.Duration) ([]byte, int, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var text strings.Builder
	n := 0
	lastLen := 256
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			if n == 0 && line == "" && (errors.Is(err, io.EOF) || isReset(err)) {
				return nil, 0, errClosed
			}
			return nil, n, fmt.Errorf("reading frame after %d portions: %w (partial line %q)", n, err, line)
		}
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r")
		if len(line) > 300 {
			return nil, n, fmt.Errorf("server line of %d bytes", len(line))
		}
		if line == "" {
			continue
		}
		if line == "(ENDMESS)" {
			if n == 0 {
				return nil, 0, fmt.Errorf("server sent (ENDMESS) with no portion")
			}
			data, err := b64.DecodeString(text.String())
			if err != nil {
				return nil, n, fmt.Errorf("server frame does not decode: %v", err)
			}
			if c.srv != nil && n > c.srv.maxPortions {
				return nil, n, fmt.Errorf("server frame of %d portions, limit %d", n, c.srv.maxPortions)
			}
			return data, n, nil
		}
		if lastLen != 256 {
			return nil, n, fmt.Errorf("server portion %d shorter than 256 (%d) but not last", n, lastLen)
		}
		n++
		pre := fmt.Sprintf("MESS%d//", n)
		suf := fmt.Sprintf("\\\\MESS%d", n)
		if !strings.HasPrefix(line, pre) || !strings.HasSuffix(line, suf) || len(line) < len(pre)+len(suf)+1 {
			return nil, n, fmt.Errorf("server line is not portion %d: %q", n, line)
		}
		p := line[len(pre) : len(line)-len(suf)]
		if len(p) > 256 {
			return nil, n, fmt.Errorf("server portion %d has %d chars", n, len(p))
		}
		for _, ch := range []byte(p) {
			if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return nil, n, fmt.Errorf("server portion %d has char %q", n, ch)
			}
		}
		lastLen = len(p)
		text.WriteString(p)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "use of closed"))
}

// read reads and decodes the next envelope, failing the test on any
// protocol violation by the server.
func (c *client) read() *msg {
	c.t.Helper()
	return c.readT(readTimeout)
}

func (c *client) readT(timeout time.Duration) *msg {
	c.t.Helper()
	m, err := c.tryRead(timeout)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) tryRead(timeout time.Duration) (*msg, error) {
	data, n, err := c.readFrame(timeout)
	if err != nil {
		return nil, err
	}
	m := &msg{raw: data, portions: n}
	if len(data) < 2 {
		return nil, fmt.Errorf("server envelope of %d bytes", len(data))
	}
	if data[1] != 0x01 {
		return nil, fmt.Errorf("server envelope version %#x", data[1])
	}
	m.kind = data[0]
	switch m.kind {
	case 'H':
		return m, nil
	case 'E':
		m.bodyRaw = data[2:]
	case 'S':
		if c.sess == nil {
			return nil, fmt.Errorf("sealed envelope with no session")
		}
		body, seq, err := c.sess.open(data)
		if err != nil {
			return nil, err
		}
		m.bodyRaw, m.seq = body, seq
		c.lastSeqs = append(c.lastSeqs, seq)
	default:
		return nil, fmt.Errorf("server envelope of kind %q", m.kind)
	}
	b, err := parseObj(m.bodyRaw)
	if err != nil {
		return nil, fmt.Errorf("server body %q: %v", m.bodyRaw, err)
	}
	m.body = b
	return m, nil
}

func parseObj(raw []byte) (obj, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var o obj
	if err := dec.Decode(&o); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, fmt.Errorf("not an object")
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data")
	}
	return o, nil
}

// open checks a sealed envelope from the server as section 2.2 says.
func (s *session) open(data []byte) ([]byte, uint64, error) {
	const hdr = 2 + 8 + 8 + 24
	if len(data) < hdr+box.Overhead+8+64 {
		return nil, 0, fmt.Errorf("sealed envelope too short (%d)", len(data))
	}
	signer, recip := data[2:10], data[10:18]
	if !bytes.Equal(signer, id8(s.srvEd)) {
		return nil, 0, fmt.Errorf("server signer_id %x, want %x", signer, id8(s.srvEd))
	}
	if !bytes.Equal(recip, id8(s.me.xpub[:])) {
		return nil, 0, fmt.Errorf("server recipient_id %x, want %x", recip, id8(s.me.xpub[:]))
	}
	var nonce [24]byte
	copy(nonce[:], data[18:42])
	inner, ok := box.Open(nil, data[42:], &nonce, &s.srvX, s.me.xpriv)
	if !ok {
		return nil, 0, fmt.Errorf("server box does not open")
	}
	if len(inner) < 8+64 {
		return nil, 0, fmt.Errorf("server inner too short")
	}
	seq := binary.BigEndian.Uint64(inner[:8])
	body := inner[8 : len(inner)-64]
	sig := inner[len(inner)-64:]
	signed := append(append(append([]byte{'S', 1}, data[2:18]...), inner[:8]...), body...)
	if !ed25519.Verify(s.srvEd, signed, sig) {
		return nil, 0, fmt.Errorf("server signature does not verify")
	}
	if seq <= s.rseq {
		return nil, 0, fmt.Errorf("server seq %d not above %d", seq, s.rseq)
	}
	s.rseq = seq
	return body, seq, nil
}

// sealWith builds a sealed envelope; the knobs let tests break it.
type sealOpts struct {
	seq          uint64
	signerID     []byte // default: from my ed key
	recipientID  []byte // default: from server x key
	badSig       bool
	tamperBox    bool
	signKey      ed25519.PrivateKey
	encryptToKey *[32]byte
}

func (s *session) seal(body []byte, o sealOpts) []byte {
	signer := id8(s.me.edpub)
	if o.signerID != nil {
		signer = o.signerID
	}
	recip := id8(s.srvX[:])
	if o.recipientID != nil {
		recip = o.recipientID
	}
	var seqb [8]byte
	binary.BigEndian.PutUint64(seqb[:], o.seq)
	signed := append(append(append(append([]byte{'S', 1}, signer...), recip...), seqb[:]...), body...)
	key := s.me.edpriv
	if o.signKey != nil {
		key = o.signKey
	}
	sig := ed25519.Sign(key, signed)
	if o.badSig {
		sig[0] ^= 1
	}
	inner := append(append(append([]byte{}, seqb[:]...), body...), sig...)
	var nonce [24]byte
	rand.Read(nonce[:])
	to := &s.srvX
	if o.encryptToKey != nil {
		to = o.encryptToKey
	}
	out := append(append(append([]byte{'S', 1}, signer...), recip...), nonce[:]...)
	out = box.Seal(out, inner, &nonce, to, s.me.xpriv)
	if o.tamperBox {
		out[len(out)-1] ^= 1
	}
	return out
}

// clientHello builds the 67-byte client hello.
func clientHello(k *keys) []byte {
	h := []byte{'H', 1, 'C'}
	h = append(h, k.xpub[:]...)
	return append(h, k.edpub...)
}

// hello performs the key exchange and checks the server hello (2.1, 6).
func (c *client) hello() {
	c.t.Helper()
	k := newKeys(c.t)
	ch := clientHello(k)
	c.sendFrame(ch)
	m := c.read()
	if m.kind != 'H' {
		c.t.Fatalf("expected server hello, got %q %s", m.kind, m.bodyRaw)
	}
	sess, err := checkServerHello(ch, m.raw, k)
	if err != nil {
		c.t.Fatal(err)
	}
	if got := fingerprint(sess.srvIdent); got != c.srv.fingerprint {
		c.t.Fatalf("identity key fingerprint %s, server printed %s", got, c.srv.fingerprint)
	}
	c.sess = sess
}

func checkServerHello(ch, sh []byte, k *keys) (*session, error) {
	if len(sh) != 163 {
		return nil, fmt.Errorf("server hello of %d bytes, want 163", len(sh))
	}
	if sh[0] != 'H' || sh[1] != 1 || sh[2] != 'S' {
		return nil, fmt.Errorf("server hello header % x", sh[:3])
	}
	s := &session{me: k}
	copy(s.srvX[:], sh[3:35])
	s.srvEd = ed25519.PublicKey(append([]byte{}, sh[35:67]...))
	s.srvIdent = ed25519.PublicKey(append([]byte{}, sh[67:99]...))
	sig := sh[99:163]
	signed := append([]byte("librecord hello v1"), ch...)
	signed = append(signed, sh[3:67]...)
	if !ed25519.Verify(s.srvIdent, signed, sig) {
		return nil, fmt.Errorf("identity_sig does not verify")
	}
	s.hello = sh
	return s, nil
}

func fingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// sendSealed seals a raw body with the next seq and sends it; it returns
// the portion count.
func (c *client) sendSealed(body []byte) int {
	c.t.Helper()
	c.sess.seq++
	return c.sendFrame(c.sess.seal(body, sealOpts{seq: c.sess.seq}))
}

func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// request sends a request (an id is added unless present) and returns the id.
func (c *client) request(fields obj) int64 {
	c.t.Helper()
	var id int64
	if v, ok := fields["id"]; ok {
		switch x := v.(type) {
		case int:
			id = int64(x)
		case int64:
			id = x
		}
	} else {
		c.sess.nextID++
		id = c.sess.nextID
		fields["id"] = id
	}
	c.sendSealed(marshal(fields))
	return id
}

// do sends a request and returns its response, checking `re` and that the
// response is sealed.
func (c *client) do(fields obj) *msg {
	c.t.Helper()
	id := c.request(fields)
	m := c.read()
	if m.kind != 'S' {
		c.t.Fatalf("%v: response not sealed: %q %s", fields["op"], m.kind, m.bodyRaw)
	}
	if re, ok := m.body.intField("re"); !ok || re != id {
		c.t.Fatalf("%v: response %s has re %v, want %d", fields["op"], m.bodyRaw, m.body["re"], id)
	}
	return m
}

// doOK is do and fails on an error response.
func (c *client) doOK(fields obj) *msg {
	c.t.Helper()
	m := c.do(fields)
	if m.body.str("op") == "error" {
		c.t.Fatalf("%v: unexpected error %s", fields["op"], m.bodyRaw)
	}
	return m
}

// doErr is do and expects an error with that code.
func (c *client) doErr(fields obj, code string) *msg {
	c.t.Helper()
	m := c.do(fields)
	checkError(c.t, m, code)
	return m
}

// checkError checks an error body's shape (3.7) and code.
func checkError(t *testing.T, m *msg, code string) {
	t.Helper()
	if m.body.str("op") != "error" {
		t.Fatalf("expected error %s, got %s", code, m.bodyRaw)
	}
	if got := m.body.str("code"); got != code {
		t.Fatalf("expected error code %q, got %s", code, m.bodyRaw)
	}
	if msgText, ok := m.body["message"].(string); !ok || msgText == "" {
		t.Fatalf("error without a message: %s", m.bodyRaw)
	}
	if re, ok := m.body["re"]; ok {
		if _, ok := m.body.intField("re"); !ok {
			t.Fatalf("error re is not an integer: %v", re)
		}
	}
}

// expectPlainError reads a plain 'E' error with that code and no re.
func (c *client) expectPlainError(code string) *msg {
	c.t.Helper()
	m := c.read()
	if m.kind != 'E' {
		c.t.Fatalf("expected plain error %s, got %q %s", code, m.kind, m.bodyRaw)
	}
	checkError(c.t, m, code)
	return m
}

// expectSealedError reads a sealed error with that code.
func (c *client) expectSealedError(code string) *msg {
	c.t.Helper()
	m := c.read()
	if m.kind != 'S' {
		c.t.Fatalf("expected sealed error %s, got %q %s", code, m.kind, m.bodyRaw)
	}
	checkError(c.t, m, code)
	return m
}

func noRe(t *testing.T, m *msg) {
	t.Helper()
	if _, ok := m.body["re"]; ok {
		t.Fatalf("error must have no re: %s", m.bodyRaw)
	}
}

// expectClosed reads until the server closes the connection; frames read
// before are returned.
func (c *client) expectClosed(timeout time.Duration) []*msg {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var got []*msg
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("connection still open after %v", timeout)
		}
		m, err := c.tryRead(left)
		if err == errClosed {
			return got
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("connection still open after %v", timeout)
			}
			if isReset(err) {
				return got
			}
			c.t.Fatalf("while waiting for close: %v", err)
		}
		got = append(got, m)
	}
}

func (o obj) str(k string) string { s, _ := o[k].(string); return s }

func (o obj) intField(k string) (int64, bool) {
	n, ok := o[k].(json.Number)
	if !ok {
		return 0, false
	}
	if strings.ContainsAny(n.String(), ".eE") {
		return 0, false
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	return v, err == nil
}

func (o obj) num(t *testing.T, k string) int64 {
	t.Helper()
	v, ok := o.intField(k)
	if !ok {
		t.Fatalf("field %q is not an integer in %v", k, o)
	}
	return v
}

func (o obj) boolField(t *testing.T, k string) bool {
	t.Helper()
	v, ok := o[k].(bool)
	if !ok {
		t.Fatalf("field %q is not a boolean in %v", k, o)
	}
	return v
}

// connect dials, says hello and logs in as pseudo.
func connect(t *testing.T, s *server, pseudo string) *client {
	t.Helper()
	c := dial(t, s)
	c.hello()
	c.login(pseudo)
	return c
}

func (c *client) login(pseudo string) *msg {
	c.t.Helper()
	u, ok := c.srv.users[pseudo]
	if !ok {
		c.t.Fatalf("no user %s", pseudo)
	}
	m := c.doOK(obj{"op": "login", "password": u.password})
	if m.body.str("op") != "connected" || m.body.str("status") != "CONNECTÉ" {
		c.t.Fatalf("login: %s", m.bodyRaw)
	}
	return m
}

// resumeOn opens a new connection and resumes this client's session on it.
func (c *client) resumeConn() *client {
	c.t.Helper()
	n := dial(c.t, c.srv)
	n.sess = c.sess
	return n
}

// expectUnknownSession resumes c's session on new connections until the
// server answers a plain unknown_session. A session that never logged in
// ends with its connection, but the server notices a close on its own
// time: until it has, a resume may still succeed (and the session then
// ends with that connection too).
func (c *client) expectUnknownSession() {
	c.t.Helper()
	var last *msg
	testkit.WaitFor(c.t, "unknown_session", func() bool {
		r := c.resumeConn()
		defer r.close()
		r.request(obj{"op": "resume"})
		last = r.read()
		return last.kind == 'E'
	})
	checkError(c.t, last, "unknown_session")
	noRe(c.t, last)
}

// message is one message of a fetch answer.
type message struct {
	ID     int64
	At     string
	Pseudo string
	Text   string
	System bool
}

func messagesOf(t *testing.T, m *msg) []message {
	t.Helper()
	if m.body.str("op") != "messages" {
		t.Fatalf("expected messages, got %s", m.bodyRaw)
	}
	arr, ok := m.body["messages"].([]any)
	if !ok {
		t.Fatalf("messages is not an array: %s", m.bodyRaw)
	}
	var out []message
	for _, e := range arr {
		o, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("message is not an object: %s", m.bodyRaw)
		}
		ob := obj(o)
		mm := message{ID: ob.num(t, "id"), At: ob.str("at"), Pseudo: ob.str("pseudo"), Text: ob.str("text")}
		if _, ok := o["pseudo"].(string); !ok {
			t.Fatalf("message pseudo not a string: %v", o)
		}
		if _, ok := o["text"].(string); !ok {
			t.Fatalf("message text not a string: %v", o)
		}
		if _, err := time.Parse(time.RFC3339Nano, mm.At); err != nil || !strings.HasSuffix(mm.At, "Z") {
			t.Fatalf("message at %q is not an RFC 3339 UTC time", mm.At)
		}
		if v, ok := o["system"]; ok {
			b, ok := v.(bool)
			if !ok {
				t.Fatalf("system is not a boolean: %v", o)
			}
			mm.System = b
		}
		out = append(out, mm)
	}
	for i := 1; i < len(out); i++ {
		if out[i].ID <= out[i-1].ID {
			t.Fatalf("messages not oldest first: %v", out)
		}
	}
	return out
}

// fetch runs a fetch and returns its messages and more.
func (c *client) fetch(fields obj) ([]message, bool, *msg) {
	c.t.Helper()
	f := obj{"op": "fetch"}
	for k, v := range fields {
		f[k] = v
	}
	m := c.doOK(f)
	return messagesOf(c.t, m), m.body.boolField(c.t, "more"), m
}

// send sends a text and returns the ack's msg id.
func (c *client) send(salon, text string) int64 {
	c.t.Helper()
	m := c.doOK(obj{"op": "send", "salon": salon, "text": text, "cid": randCID()})
	if m.body.str("op") != "ack" {
		c.t.Fatalf("expected ack, got %s", m.bodyRaw)
	}
	return m.body.num(c.t, "msg")
}

func randCID() string {
	var b [12]byte
	rand.Read(b[:])
	return b64.EncodeToString(b[:])
}

func texts(ms []message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}
