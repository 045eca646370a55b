package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"librecord/net/client"
)

// Target is the server a run drives.
type Target struct {
	Addr          string
	CheckIdentity func(addr string, identity ed25519.PublicKey) error
	// Passwords of the users to log in as, one session each in turn
	// (session i logs in with Passwords[i%len]).
	Passwords []string
	// PID is the server's process, for its CPU time and memory; 0 when
	// it cannot be read (a server on another machine).
	PID int
	// Transport is "tcp" or "ws" (Dial then opens WebSockets).
	Transport string
	// Dial opens a connection to the server; nil: TCP to Addr.
	Dial func(ctx context.Context) (stdnet.Conn, error)
}

// Latency is a distribution, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	N   int     `json:"n"`
}

func latency(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	slices.Sort(ns)
	at := func(p float64) float64 { return float64(ns[int(p*float64(len(ns)-1))]) / 1e6 }
	return Latency{P50: at(0.50), P99: at(0.99), Max: at(1), N: len(ns)}
}

// Errors counts what went wrong, by kind.
type Errors struct {
	Login       int64 `json:"login"`
	Send        int64 `json:"send"`
	Fetch       int64 `json:"fetch"`
	RateLimited int64 `json:"rate_limited"` // answers rate_limited (logins and sends), not in the others
	Reconnects  int64 `json:"reconnects"`   // connections lost and resumed
	Missing     int64 `json:"missing_deliveries"`
}

func (e Errors) total() int64 { return e.Login + e.Send + e.Fetch + e.Missing }

// Result is one shape's measurements.
type Result struct {
	Shape        string  `json:"shape"`
	Transport    string  `json:"transport"` // tcp or ws
	Sessions     int     `json:"sessions"`  // logged in
	Wanted       int     `json:"sessions_wanted"`
	Senders      int     `json:"senders"`
	Polling      bool    `json:"polling"`
	Size         int     `json:"size_bytes"`
	Seconds      float64 `json:"seconds"`
	OfferedRate  float64 `json:"offered_msgs_per_s"` // 0: as fast as acks return
	AckedRate    float64 `json:"acked_msgs_per_s"`
	Acked        int64   `json:"acked"`
	Deliveries   int64   `json:"deliveries"`
	DeliveryRate float64 `json:"deliveries_per_s"`
	Answers      int64   `json:"fetch_answers"`
	Requests     int64   `json:"requests"` // acks and fetch answers in the window
	Delivery     Latency `json:"delivery"`
	Ack          Latency `json:"ack"`
	Errors       Errors  `json:"errors"`

	// Server side, from its process accounting (nil: not measured).
	ServerCPU            *float64 `json:"server_cpu_seconds"`
	ServerCores          *float64 `json:"server_cores"`
	ServerCPUPerRequest  *float64 `json:"server_cpu_us_per_request"`
	ServerCPUPerDelivery *float64 `json:"server_cpu_us_per_delivery"`
	ServerRSSBase        *int64   `json:"server_rss_kib_before"`
	ServerRSS            *int64   `json:"server_rss_kib"`
	ServerPerSession     *float64 `json:"server_kib_per_session"`
	ServerFDs            *int     `json:"server_fds"`

	FloorUS    float64  `json:"floor_us"`
	FloorRatio *float64 `json:"cpu_per_request_over_floor"`
	// OverTCP is, over WebSocket, the server's CPU per request over that
	// of the same shape over TCP in the same run.
	OverTCP *float64 `json:"cpu_per_request_over_tcp,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// member is one logged-in session of the run.
type member struct {
	s    *client.Session
	poll time.Duration // the long-poll wait at the server's cadence
	last int64         // newest id seen in the salon
}

// run is the shared state of one shape's run.
type run struct {
	shape  Shape
	set    Settings
	target Target
	id     string // tags this run's messages and cids
	start  time.Time

	seq       atomic.Int64
	measuring atomic.Bool
	acked     atomic.Int64
	delivered atomic.Int64
	answers   atomic.Int64
	parked    atomic.Int64 // sessions that have sent their first long-poll
	errs      struct {
		login, send, fetch, limited, reconnects atomic.Int64
	}

	mu       sync.Mutex
	ackNS    []int64
	deliveNS []int64
}

// minSize is the shortest text that carries the run id, sequence number
// and send time: "bench " + 8 + " " + 19 + " " + 19 + " ".
const minSize = 6 + 8 + 1 + 19 + 1 + 19 + 1

// text is a message of exactly size bytes carrying the run id, its
// sequence number and its send time (ns since the run started).
func (r *run) text(seq int64, sent time.Duration) string {
	t := fmt.Sprintf("bench %s %d %d ", r.id, seq, sent.Nanoseconds())
	return t + strings.Repeat("x", max(0, r.shape.Size-len(t)))
}

// parse returns the send time of one of this run's messages.
func (r *run) parse(text string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(text, "bench "+r.id+" ")
	if !ok {
		return 0, false
	}
	f := strings.SplitN(rest, " ", 3)
	if len(f) < 3 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	return time.Duration(ns), err == nil
}

// Run drives one shape against t for set.Duration and returns what it
// measured. Progress lines go to progress. The sessions it opened are
// ended (bye) before it returns.
func Run(ctx context.Context, t Target, shape Shape, set Settings, progress io.Writer) (Result, error) {
	if len(t.Passwords) == 0 {
		return Result{}, errors.New("no passwords to log in with")
	}
	idb := make([]byte, 4)
	rand.Read(idb)
	r := &run{shape: shape, set: set, target: t, id: hex.EncodeToString(idb), start: time.Now()}
	if t.Transport == "" {
		t.Transport = "tcp"
	}
	res := Result{Shape: shape.Name, Transport: t.Transport, Wanted: shape.Sessions, Senders: shape.Senders, Polling: shape.Poll, Size: shape.Size, OfferedRate: shape.Rate * float64(shape.Senders)}

	var rssBase int64
	if t.PID > 0 {
		v, err := procRSS(t.PID)
		if err != nil {
			return res, err
		}
		rssBase = v
		res.ServerRSSBase = &rssBase
	}

	fmt.Fprintf(progress, "bench %s: logging in %d sessions\n", shape.Name, shape.Sessions)
	members := r.login(ctx, progress)
	defer r.bye(members)
	res.Sessions = len(members)
	if len(members) == 0 {
		return res, fmt.Errorf("shape %s: no session could log in (%d login errors, %d rate limited)",
			shape.Name, r.errs.login.Load(), r.errs.limited.Load())
	}
	senders := min(shape.Senders, len(members))
	res.Senders = senders
	res.OfferedRate = shape.Rate * float64(senders)

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var pollers sync.WaitGroup
	if shape.Poll {
		for _, m := range members {
			pollers.Go(func() { r.poll(loadCtx, m) })
		}
		// Wait for every session to have asked once (parked), then a
		// little more: the window starts on a settled server.
		deadline := time.Now().Add(set.Settle + 30*time.Second)
		for r.parked.Load() < int64(len(members)) && time.Now().Before(deadline) && ctx.Err() == nil {
			sleep(ctx, 20*time.Millisecond)
		}
		sleep(ctx, set.Settle)
	}
	if err := ctx.Err(); err != nil {
		stopLoad()
		pollers.Wait()
		return res, err
	}

	var cpu0 float64
	if t.PID > 0 {
		v, err := procCPU(t.PID)
		if err != nil {
			return res, err
		}
		cpu0 = v
	}
	r.measuring.Store(true)
	windowStart := time.Now()
	end := windowStart.Add(set.Duration)
	var sendersWG sync.WaitGroup
	for i := range senders {
		sendersWG.Go(func() { r.send(loadCtx, members[i], i, end) })
	}
	r.report(ctx, progress, windowStart, end)
	sendersWG.Wait()
	elapsed := time.Since(windowStart)
	if t.PID > 0 {
		cpu1, err := procCPU(t.PID)
		if err != nil {
			return res, err
		}
		rss, err := procRSS(t.PID)
		if err != nil {
			return res, err
		}
		res.ServerCPU = ptr(cpu1 - cpu0)
		res.ServerRSS = &rss
		res.ServerPerSession = ptr(float64(rss-rssBase) / float64(len(members)))
		if fds := procFDs(t.PID); fds >= 0 {
			res.ServerFDs = &fds
		}
	}
	// Answers and acks are counted in the window only.
	requests := r.answers.Load() + r.acked.Load()
	acked := r.acked.Load()

	// The last deliveries: a parked fetch answers at once, one between
	// two polls within its wait.
	want := acked * int64(len(members))
	if !shape.Poll {
		want = 0
	}
	deadline := time.Now().Add(set.Drain)
	for r.delivered.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		sleep(ctx, 20*time.Millisecond)
	}
	r.measuring.Store(false)
	stopLoad()
	pollers.Wait()

	res.Seconds = elapsed.Seconds()
	res.Acked = acked
	res.AckedRate = float64(acked) / elapsed.Seconds()
	res.Deliveries = r.delivered.Load()
	res.DeliveryRate = float64(res.Deliveries) / elapsed.Seconds()
	res.Answers = requests - acked
	res.Requests = requests
	r.mu.Lock()
	res.Ack = latency(r.ackNS)
	res.Delivery = latency(r.deliveNS)
	r.mu.Unlock()
	res.Errors = Errors{
		Login: r.errs.login.Load(), Send: r.errs.send.Load(), Fetch: r.errs.fetch.Load(),
		RateLimited: r.errs.limited.Load(), Reconnects: r.errs.reconnects.Load(),
		Missing: max(0, want-res.Deliveries),
	}
	if res.ServerCPU != nil {
		res.ServerCores = ptr(*res.ServerCPU / elapsed.Seconds())
		if requests > 0 {
			res.ServerCPUPerRequest = ptr(*res.ServerCPU / float64(requests) * 1e6)
		}
		if res.Deliveries > 0 {
			res.ServerCPUPerDelivery = ptr(*res.ServerCPU / float64(res.Deliveries) * 1e6)
		}
	}
	return res, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// login opens the shape's sessions: dial, hello, login, then the latest
// messages of the salon (as the chat opens it). Logins are bounded by
// LoginWorkers in flight and paced by LoginRate; a rate_limited answer is
// counted apart and retried after a pause, a few times.
func (r *run) login(ctx context.Context, progress io.Writer) []*member {
	members := make([]*member, r.shape.Sessions)
	var pace <-chan time.Time
	if r.set.LoginRate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / r.set.LoginRate))
		defer tick.Stop()
		pace = tick.C
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range max(1, r.set.LoginWorkers) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(members) && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				for attempt := 0; attempt < 4 && ctx.Err() == nil; attempt++ {
					if pace != nil {
						select {
						case <-pace:
						case <-ctx.Done():
							return
						}
					}
					m, err := r.join(ctx, r.target.Passwords[i%len(r.target.Passwords)])
					if err == nil {
						members[i] = m
						break
					}
					if client.IsCode(err, "rate_limited") {
						r.errs.limited.Add(1)
						sleep(ctx, time.Second)
						continue
					}
					r.errs.login.Add(1)
					if ctx.Err() == nil && r.errs.login.Load() <= 3 {
						fmt.Fprintf(progress, "bench %s: login %d: %v\n", r.shape.Name, i, err)
					}
					break
				}
				if n := done.Add(1); n%200 == 0 {
					fmt.Fprintf(progress, "bench %s: %d/%d logged in\n", r.shape.Name, n, len(members))
				}
			}
		})
	}
	wg.Wait()
	out := members[:0]
	for _, m := range members {
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func (r *run) join(ctx context.Context, password string) (*member, error) {
	s, err := client.Dial(ctx, client.Config{Addr: r.target.Addr, CheckIdentity: r.target.CheckIdentity, Dial: r.target.Dial})
	if err != nil {
		return nil, err
	}
	info, err := s.Login(ctx, password)
	if err != nil {
		s.Close()
		return nil, err
	}
	// PROTOCOL.md 5: keep the poll cadence; ask for at most 2.5 s at 3 s.
	wait := min(2500*time.Millisecond, info.Poll-500*time.Millisecond)
	if wait <= 0 {
		wait = max(info.Poll/2, time.Millisecond)
	}
	m := &member{s: s, poll: wait}
	res, err := s.Fetch(ctx, client.FetchRequest{Salon: r.set.Salon, Limit: 10})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open salon %q: %w", r.set.Salon, err)
	}
	for _, msg := range res.Messages {
		m.last = max(m.last, msg.ID)
	}
	return m, nil
}

// bye ends every session, a few at a time, the way people leave.
func (r *run) bye(members []*member) {
	work := make(chan *member)
	var wg sync.WaitGroup
	for range max(1, r.set.LoginWorkers) {
		wg.Go(func() {
			for m := range work {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				m.s.Bye(ctx)
				cancel()
			}
		})
	}
	for _, m := range members {
		work <- m
	}
	close(work)
	wg.Wait()
}

// recover resumes a session whose connection was lost; false when the
// run is over or the session cannot be resumed.
func (r *run) recover(ctx context.Context, m *member, err error) bool {
	if !errors.Is(err, client.ErrConnLost) && !errors.Is(err, client.ErrNotConnected) {
		return true
	}
	for range 5 {
		if ctx.Err() != nil {
			return false
		}
		if err := m.s.Resume(ctx); err == nil {
			r.errs.reconnects.Add(1)
			return true
		} else if client.IsCode(err, "unknown_session") || errors.Is(err, client.ErrClosed) {
			return false
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return false
}

// poll long-polls the salon until ctx ends, recording the delivery
// latency of each of this run's messages.
func (r *run) poll(ctx context.Context, m *member) {
	first := true
	for ctx.Err() == nil {
		if first {
			r.parked.Add(1)
			first = false
		}
		res, err := m.s.Fetch(ctx, client.FetchRequest{Salon: r.set.Salon, Limit: 100, After: m.last, HasAfter: true, Wait: m.poll})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.errs.fetch.Add(1)
			if !r.recover(ctx, m, err) {
				return
			}
			sleep(ctx, 50*time.Millisecond)
			continue
		}
		now := time.Since(r.start)
		measuring := r.measuring.Load()
		if measuring {
			r.answers.Add(1)
		}
		var lat []int64
		for _, msg := range res.Messages {
			m.last = max(m.last, msg.ID)
			if msg.System {
				continue
			}
			if sent, ok := r.parse(msg.Text); ok && measuring {
				lat = append(lat, (now - sent).Nanoseconds())
			}
		}
		if len(lat) > 0 {
			r.delivered.Add(int64(len(lat)))
			r.mu.Lock()
			r.deliveNS = append(r.deliveNS, lat...)
			r.mu.Unlock()
		}
	}
}

// send sends until end: at the shape's rate, or as fast as acks return
// when the rate is 0, one send in flight.
func (r *run) send(ctx context.Context, m *member, k int, end time.Time) {
	var interval time.Duration
	next := time.Now()
	if r.shape.Rate > 0 {
		interval = time.Duration(float64(time.Second) / r.shape.Rate)
		// Spread the senders over one interval.
		next = next.Add(interval * time.Duration(k) / time.Duration(max(1, r.shape.Senders)))
	}
	for ctx.Err() == nil {
		if interval > 0 {
			if now := time.Now(); next.After(now) {
				if next.After(end) {
					return
				}
				sleep(ctx, next.Sub(now))
			} else if now.Sub(next) > time.Second {
				next = now // far behind: the offered rate is not achieved
			}
			next = next.Add(interval)
		}
		if !time.Now().Before(end) {
			return
		}
		seq := r.seq.Add(1)
		t0 := time.Now()
		_, err := m.s.Send(ctx, r.set.Salon, r.text(seq, t0.Sub(r.start)), "bench-"+r.id+"-"+strconv.FormatInt(seq, 10))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if client.IsCode(err, "rate_limited") {
				r.errs.limited.Add(1)
				sleep(ctx, 100*time.Millisecond)
				continue
			}
			r.errs.send.Add(1)
			if !r.recover(ctx, m, err) {
				return
			}
			continue
		}
		d := time.Since(t0)
		r.acked.Add(1)
		r.mu.Lock()
		r.ackNS = append(r.ackNS, d.Nanoseconds())
		r.mu.Unlock()
	}
}

// report writes a progress line every second until end.
func (r *run) report(ctx context.Context, w io.Writer, start, end time.Time) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		left := time.Until(end)
		if left <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(left):
			return
		case <-tick.C:
			s := time.Since(start).Seconds()
			fmt.Fprintf(w, "bench %s: %4.0fs acked %d (%.0f/s) delivered %d (%.0f/s) errors %d\n",
				r.shape.Name, s, r.acked.Load(), float64(r.acked.Load())/s,
				r.delivered.Load(), float64(r.delivered.Load())/s,
				r.errs.login.Load()+r.errs.send.Load()+r.errs.fetch.Load())
		}
	}
}
