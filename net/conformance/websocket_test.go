package conformance

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// transportEnv selects the transport of every connection the suite opens:
// "ws" for WebSocket (PROTOCOL.md 1.1), anything else for TCP.
const transportEnv = "LIBRECORD_CONFORMANCE_TRANSPORT"

func overWebSocket() bool { return os.Getenv(transportEnv) == "ws" }

// dialWebSocket opens GET /ws with the subprotocol and returns the
// connection as a byte stream. The stream goes through an in-memory pipe,
// so that a read deadline interrupts only the read, as on
// TCP, instead of closing the WebSocket.
func dialWebSocket(d *net.Dialer, webURL string) (net.Conn, error) {
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(webURL, "http") + "/ws"
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"librecord.v1"}})
	if err != nil {
		return nil, err
	}
	ws := websocket.NetConn(context.Background(), c, websocket.MessageText)
	mine, bridge := net.Pipe()
	go func() { io.Copy(ws, bridge); ws.Close() }()
	go func() { io.Copy(bridge, ws); bridge.Close() }()
	return mine, nil
}

// TestOverWebSocket runs the whole suite again, in a child process of this
// test binary, with every connection over WebSocket: PROTOCOL.md 1.1 says
// everything but the transport is as over TCP.
func TestOverWebSocket(t *testing.T) {
	if overWebSocket() {
		t.Skip("already over WebSocket")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1")
	cmd.Env = append(os.Environ(), transportEnv+"=ws")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("conformance over WebSocket: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
