package commands

import (
	"fmt"
	stdnet "net"
	"os"
	"strings"
)

// sdNotify sends state (such as "READY=1") to the service manager when
// serve runs under systemd with Type=notify: NOTIFY_SOCKET names a unix
// datagram socket, a path or, with a leading '@', an abstract one (which
// the net package maps itself). Without NOTIFY_SOCKET it does nothing.
func sdNotify(state string) error {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return nil
	}
	if !strings.HasPrefix(name, "/") && !strings.HasPrefix(name, "@") {
		return fmt.Errorf("NOTIFY_SOCKET %q: only unix socket paths and abstract sockets are supported", name)
	}
	conn, err := stdnet.DialUnix("unixgram", nil, &stdnet.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
