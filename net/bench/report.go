package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is a whole bench run: where it ran and each shape's result.
type Report struct {
	// Server says what was driven: "child" (started by bench) or "addr".
	Server      string   `json:"server"`
	Addr        string   `json:"addr,omitempty"`
	ServeArgs   []string `json:"serve_args,omitempty"`
	Unthrottled []string `json:"unthrottled,omitempty"`
	CPUs        int      `json:"cpus"`
	FloorUS     float64  `json:"floor_us"`
	FloorSize   int      `json:"floor_body_bytes"`
	Shapes      []Result `json:"shapes"`
}

// WriteTable prints the report as a table: one column per shape, one
// row per measurement ("-" where it was not measured).
func (r *Report) WriteTable(w io.Writer) error {
	switch r.Server {
	case "child":
		fmt.Fprintf(w, "server: librecord serve %s (started by bench, %d CPUs)\n", strings.Join(r.ServeArgs, " "), r.CPUs)
		if len(r.Unthrottled) > 0 {
			fmt.Fprintf(w, "limits switched off: --%s\n", strings.Join(r.Unthrottled, ", --"))
		}
		if slices.ContainsFunc(r.Shapes, func(s Result) bool { return s.Transport == "ws" }) {
			fmt.Fprintln(w, "transport ws: the same server also serving --web 127.0.0.1:0, the clients on WebSockets to its /ws")
		}
	default:
		fmt.Fprintf(w, "server: %s (running; its limits as the host set them)\n", r.Addr)
	}
	fmt.Fprintf(w, "crypto floor: %.1f µs (one Ed25519 sign + verify, one box seal + open, %d-byte body)\n\n", r.FloorUS, r.FloorSize)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, cell func(Result) string) {
		fmt.Fprint(tw, name+"\t")
		for _, s := range r.Shapes {
			fmt.Fprint(tw, cell(s)+"\t")
		}
		fmt.Fprintln(tw)
	}
	f0 := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	opt := func(v *float64, f func(float64) string) string {
		if v == nil {
			return "-"
		}
		return f(*v)
	}
	lat := func(l Latency) string {
		if l.N == 0 {
			return "-"
		}
		return f1(l.P50) + " / " + f1(l.P99) + " / " + f1(l.Max)
	}
	row("shape", func(s Result) string { return s.Shape })
	row("transport", func(s Result) string { return s.Transport })
	row("sessions", func(s Result) string {
		if s.Sessions != s.Wanted {
			return fmt.Sprintf("%d of %d", s.Sessions, s.Wanted)
		}
		return strconv.Itoa(s.Sessions)
	})
	row("senders", func(s Result) string { return strconv.Itoa(s.Senders) })
	row("message bytes", func(s Result) string { return strconv.Itoa(s.Size) })
	row("seconds", func(s Result) string { return f1(s.Seconds) })
	row("offered msgs/s", func(s Result) string {
		if s.Senders == 0 {
			return "0"
		}
		if s.OfferedRate == 0 {
			return "max"
		}
		return f0(s.OfferedRate)
	})
	row("acked msgs/s", func(s Result) string { return f0(s.AckedRate) })
	row("deliveries/s", func(s Result) string { return f0(s.DeliveryRate) })
	row("fetch answers/s", func(s Result) string { return f0(float64(s.Answers) / max(s.Seconds, 1e-9)) })
	row("delivery ms p50/p99/max", func(s Result) string { return lat(s.Delivery) })
	row("ack ms p50/p99/max", func(s Result) string { return lat(s.Ack) })
	row("server cores", func(s Result) string {
		return opt(s.ServerCores, func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) })
	})
	row("server µs/request", func(s Result) string { return opt(s.ServerCPUPerRequest, f0) })
	row("server µs/delivery", func(s Result) string { return opt(s.ServerCPUPerDelivery, f0) })
	row("server KiB/session", func(s Result) string { return opt(s.ServerPerSession, f1) })
	row("server RSS MiB", func(s Result) string {
		if s.ServerRSS == nil {
			return "-"
		}
		return f1(float64(*s.ServerRSS) / 1024)
	})
	row("µs/request ÷ floor", func(s Result) string { return opt(s.FloorRatio, f1) })
	if slices.ContainsFunc(r.Shapes, func(s Result) bool { return s.Transport == "ws" }) {
		row("µs/request ÷ tcp's", func(s Result) string {
			return opt(s.OverTCP, func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) })
		})
	}
	row("errors", func(s Result) string {
		e := s.Errors
		out := strconv.FormatInt(e.total(), 10)
		var parts []string
		for _, p := range []struct {
			n    int64
			name string
		}{{e.Login, "login"}, {e.Send, "send"}, {e.Fetch, "fetch"}, {e.Missing, "missing"}} {
			if p.n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", p.name, p.n))
			}
		}
		if len(parts) > 0 {
			out += " (" + strings.Join(parts, ", ") + ")"
		}
		return out
	})
	row("rate_limited answers", func(s Result) string { return strconv.FormatInt(s.Errors.RateLimited, 10) })
	row("reconnects", func(s Result) string { return strconv.FormatInt(s.Errors.Reconnects, 10) })
	return tw.Flush()
}

// Add appends a shape's result with the report's crypto floor and the
// ratio of the server's CPU per request to it.
func (r *Report) Add(res Result) {
	res.FloorUS = r.FloorUS
	if res.ServerCPUPerRequest != nil && r.FloorUS > 0 {
		res.FloorRatio = ptr(*res.ServerCPUPerRequest / r.FloorUS)
	}
	if res.Transport == "ws" && res.ServerCPUPerRequest != nil {
		// The same shape over TCP, run before it.
		for _, tcp := range slices.Backward(r.Shapes) {
			if tcp.Shape == res.Shape && tcp.Transport != "ws" && tcp.ServerCPUPerRequest != nil && *tcp.ServerCPUPerRequest > 0 {
				res.OverTCP = ptr(*res.ServerCPUPerRequest / *tcp.ServerCPUPerRequest)
				break
			}
		}
	}
	r.Shapes = append(r.Shapes, res)
}
