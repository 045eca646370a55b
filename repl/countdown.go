package repl

import (
	"fmt"
	"time"
)

// showCountdown refreshes the status line while disconnected.
func (e *engine) showCountdown() {
	left := time.Until(e.deadline).Round(time.Second)
	if left < 0 {
		left = 0
	}
	waiting := ""
	if n := e.out.Len(); n == 1 {
		waiting = ", 1 message waiting"
	} else if n > 1 {
		waiting = fmt.Sprintf(", %d messages waiting", n)
	}
	switch e.state {
	case stResuming:
		e.front.status(fmt.Sprintf("connection lost; reconnecting, %s left%s", fmtSecs(left), waiting))
	case stReloginWait:
		e.front.status(fmt.Sprintf("not connected; logging in again in %s%s", fmtSecs(left), waiting))
	}
}

func fmtSecs(d time.Duration) string { return fmt.Sprintf("%ds", int(d/time.Second)) }
