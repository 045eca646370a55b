package bench

import (
	"context"
	stdnet "net"

	"github.com/coder/websocket"

	"librecord/net/web"
)

// DialWebSocket returns a Target.Dial opening WebSockets to url
// (ws://HOST:PORT/ws) with the subprotocol librecord.v1, each as a
// net.Conn carrying the section 1 byte stream (PROTOCOL.md 1.1), as the
// page does.
func DialWebSocket(url string) func(ctx context.Context) (stdnet.Conn, error) {
	return func(ctx context.Context) (stdnet.Conn, error) {
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{web.Subprotocol}})
		if err != nil {
			return nil, err
		}
		// ctx bounds the dial only: the connection lives until closed.
		// NetConn switches the message size limit off; the client's frame
		// reader bounds what it keeps (a line, a frame) as over TCP.
		return websocket.NetConn(context.Background(), c, websocket.MessageText), nil
	}
}
