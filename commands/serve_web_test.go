package commands

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	stdnet "net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"librecord/crypto"
	"librecord/db"
	lnet "librecord/net"
)

func TestServeRefusesBadWebFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "never.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--web-cert", "c.pem", "--web-key", "k.pem"}, "need --web"},
		{[]string{"--web-trusted-proxy", "10.0.0.0/8"}, "need --web"},
		{[]string{"--web", "127.0.0.1:0", "--web-cert", "c.pem"}, "go together"},
		{[]string{"--web", "127.0.0.1:0", "--web-trusted-proxy", "10.0.0.0/99"}, "--web-trusted-proxy"},
		{[]string{"--web", "127.0.0.1:0", "--web-cert", filepath.Join(dir, "none.pem"), "--web-key", filepath.Join(dir, "none.key")}, "--web-cert"},
		{[]string{"--web", "127.0.0.1:0", "--web-header-timeout", "0s"}, "--web-header-timeout"},
	} {
		app := NewApp()
		if findCommand(app.Commands, "serve") == nil {
			app.Commands = append(app.Commands, serveCommand())
		}
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := Run(context.Background(), app, append([]string{"librecord", "--db", path, "serve", "--listen", "127.0.0.1:0"}, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start touched the database: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []stdnet.IP{stdnet.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

// TestServeWebTLS: serve --web with a certificate serves the page over
// HTTPS and the protocol over WSS, with flags after the command too.
func TestServeWebTLS(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "community.db")
	passFile := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(passFile, []byte("host passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kdf := crypto.InsecureTestKDF()
	if err := db.Create(context.Background(), path, []byte("host passphrase"), db.CreateOptions{KDF: &kdf}); err != nil {
		t.Fatal(err)
	}
	cert, key := selfSigned(t, dir)

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	app := NewApp()
	if findCommand(app.Commands, "serve") == nil {
		app.Commands = append(app.Commands, serveCommand())
	}
	app.Writer, app.ErrWriter = pw, io.Discard
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, app, []string{"librecord", "serve", "--listen", "127.0.0.1:0", "--db", path,
			"--passphrase-file", passFile, "--web", "127.0.0.1:0", "--web-cert", cert, "--web-key", key})
		pw.CloseWithError(errors.New("serve returned"))
		done <- err
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	var url string
	lines := bufio.NewScanner(pr)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "librecord: web page on "); ok {
			url = strings.TrimSuffix(rest, "/")
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("serve printed web address %q", url)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	resp, err := hc.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET / over HTTPS: %d %v", resp.StatusCode, resp.Header)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	c, _, err := websocket.Dial(wctx, "wss"+strings.TrimPrefix(url, "https")+"/ws",
		&websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"librecord.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	nc := websocket.NetConn(wctx, c, websocket.MessageText)
	defer nc.Close()
	keys := crypto.NewSessionKeys()
	hello := keys.ClientHello()
	if err := lnet.WriteFrame(nc, hello); err != nil {
		t.Fatal(err)
	}
	p, _, err := lnet.NewFrameReader(bufio.NewReader(nc), 0).Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := crypto.ParseServerHello(p, hello); err != nil {
		t.Fatalf("server hello over WSS: %v", err)
	}
}
