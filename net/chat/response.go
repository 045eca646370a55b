package chat

import (
	"time"

	"librecord/net"
)

func formatTime(t time.Time) string { return t.UTC().Format(net.TimeFormat) }
