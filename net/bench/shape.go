package bench

import (
	"fmt"
	"strings"
	"time"
)

// Shape is one kind of load.
type Shape struct {
	Name string
	// Sessions logged in at once; the first Senders of them send.
	Sessions int
	Senders  int
	// Rate is each sender's messages a second; 0 sends as fast as acks
	// return (one send in flight per sender).
	Rate float64
	// Poll: every session long-polls the salon at the protocol's cadence
	// (fetch after the last id seen, waiting at most 2.5 s) and so
	// receives every message (deliveries). Without it only the senders
	// are connected and nothing is fetched (pure ingest).
	Poll bool
	// Size is the message text, in bytes.
	Size int
}

// DefaultSize is the text of a bench message, in bytes: a chat line.
const DefaultSize = 100

// Shapes are the loads of issue 9, by name, in the order "all" runs them.
var Shapes = []Shape{
	// A small community: everyone long-polls, a few people talk.
	{Name: "community", Sessions: 100, Senders: 5, Rate: 4, Poll: true, Size: DefaultSize},
	// Durable ingest: many senders, each waiting for its ack (durable)
	// before the next send.
	{Name: "send", Sessions: 50, Senders: 50, Rate: 0, Poll: false, Size: DefaultSize},
	// Fan-out at the maximum: a few clients, all sending as fast as acks
	// return and all receiving everything.
	{Name: "fanout", Sessions: 10, Senders: 10, Rate: 0, Poll: true, Size: DefaultSize},
	// Idle: many sessions long-polling, no traffic.
	{Name: "idle", Sessions: 1000, Senders: 0, Rate: 0, Poll: true, Size: DefaultSize},
}

// ShapeNames lists the shape names, for help texts.
func ShapeNames() string {
	names := make([]string, len(Shapes))
	for i, s := range Shapes {
		names[i] = s.Name
	}
	return strings.Join(names, "|")
}

// Overrides change a shape's defaults; a nil field keeps the default.
type Overrides struct {
	Sessions, Senders *int
	Rate              *float64
	Size              *int
}

// Select returns the shapes named by name ("all" for every one) with the
// overrides applied, or an error for an unknown name or a shape that
// makes no sense (more senders than sessions, a negative rate).
func Select(name string, o Overrides) ([]Shape, error) {
	var out []Shape
	for _, s := range Shapes {
		if name == "all" || name == s.Name {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("unknown shape %q: want %s or all", name, ShapeNames())
	}
	for i := range out {
		s := &out[i]
		if o.Sessions != nil {
			s.Sessions = *o.Sessions
			s.Senders = min(s.Senders, s.Sessions)
		}
		if o.Senders != nil {
			s.Senders = *o.Senders
		}
		if o.Rate != nil {
			s.Rate = *o.Rate
		}
		if o.Size != nil {
			s.Size = *o.Size
		}
		switch {
		case s.Sessions < 1:
			return nil, fmt.Errorf("shape %s: --sessions must be at least 1", s.Name)
		case s.Senders < 0 || s.Senders > s.Sessions:
			return nil, fmt.Errorf("shape %s: --senders must be 0 to --sessions (%d)", s.Name, s.Sessions)
		case s.Rate < 0:
			return nil, fmt.Errorf("shape %s: --rate cannot be negative", s.Name)
		case s.Size < minSize:
			return nil, fmt.Errorf("shape %s: --size must be at least %d bytes (the message carries its send time)", s.Name, minSize)
		}
	}
	return out, nil
}

// Settings are how a run is driven, whatever the shape.
type Settings struct {
	Duration time.Duration // sending time, measured
	Salon    string        // where the messages go
	// LoginWorkers bounds the logins in flight; LoginRate (a second, 0:
	// no bound) paces them: under a running server's limits.
	LoginWorkers int
	LoginRate    float64
	// Settle is how long the sessions long-poll before the measured
	// window starts (every session parked once).
	Settle time.Duration
	// Drain bounds the wait, after the window, for the last deliveries.
	Drain time.Duration
}
