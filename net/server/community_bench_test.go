package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"librecord/db"
	lclient "librecord/net/client"
	"librecord/net/server"
	"librecord/net/server/servertest"
)

// BenchmarkCommunity models a real community over loopback: the real
// server (production config, real SQLite file, synchronous=FULL) and real
// clients (net/client), every user logged in and long-polling their open
// salon the way the chat does (fetch after the last id, wait 2.5 s), while
// one user in ten sends ~100-byte messages at random (Poisson) moments.
// Each iteration is one send window; setup and teardown are not timed.
//
// Metrics: delivery latency from the start of a Send to each member's
// fetch answer carrying it (the sender included), server goroutines and
// heap bytes per connected session (everyone parked, after GC), and the
// time a login takes when a burst of logins arrives at once, with the test
// Argon2id parameters and the production ones (the database computes at
// most min(NumCPU, 4) password hashes at once).
//
// Clients and server share one process (and one machine), so the
// latencies include the clients' own CPU time: on a loaded machine they
// are indicative only. Also reported: the process's CPU (server and
// clients together) during the send window, its open descriptors per
// session (two: both ends of the loopback connection are in this process)
// and the server's share of the heap, attributed by allocation stack.
// Run:
//
//	go test -run '^$' -bench Community -benchtime 1x ./net/server/
func BenchmarkCommunity(b *testing.B) {
	for _, users := range []int{50, 300} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			benchCommunity(b, communityShape{
				users:        users,
				salons:       4,
				senders:      users / 10,
				meanInterval: 3 * time.Second,
				window:       10 * time.Second,
			})
		})
	}
	burst := 50 // LIBRECORD_BENCH_BURST=300: everyone at once, as after a restart
	if n, err := strconv.Atoi(os.Getenv("LIBRECORD_BENCH_BURST")); err == nil && n > 0 {
		burst = n
	}
	for _, kdf := range []string{"test", "production"} {
		b.Run(fmt.Sprintf("loginburst=%d/kdf=%s", burst, kdf), func(b *testing.B) {
			benchLoginBurst(b, burst, kdf == "production")
		})
	}
}

type communityShape struct {
	users, salons, senders int
	meanInterval           time.Duration // per sender, exponential
	window                 time.Duration // sending time per iteration
}

var communitySalons = []string{"general", "dev", "random", "games", "music", "help"}

const (
	communityPollWait     = 2500 * time.Millisecond // what the chat asks (PROTOCOL.md 5)
	communityLoginWorkers = 16                      // concurrent logins while setting up
)

func benchPassword(i int) string { return fmt.Sprintf("password-of-user-%04d", i) }

// benchServer creates a database (test or production Argon2id), its
// salons and users, and serves it with the production config. Every user
// may open every salon.
func benchServer(b *testing.B, users, salons int, productionKDF bool) (addr string, identity ed25519.PublicKey) {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "librecord.db")
	var d *db.DB
	if productionKDF {
		var err error
		d, err = db.OpenOrCreate(ctx, path, []byte("host passphrase"), db.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
	} else {
		d = servertest.NewDB(b, path)
	}
	names := communitySalons[:salons]
	for _, s := range names[1:] {
		if _, err := d.AddSalon(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	for i := range users {
		if _, err := d.AddUser(ctx, fmt.Sprintf("user%04d", i), benchPassword(i), names); err != nil {
			b.Fatal(err)
		}
	}
	identity = d.Identity().Public().(ed25519.PublicKey)
	return servertest.Start(b, d, server.DefaultConfig()), identity
}

func benchDial(ctx context.Context, addr string, identity ed25519.PublicKey) (*lclient.Session, error) {
	return lclient.Dial(ctx, lclient.Config{Addr: addr, CheckIdentity: func(_ string, id ed25519.PublicKey) error {
		if !id.Equal(identity) {
			return errors.New("unexpected server identity")
		}
		return nil
	}})
}

// checkNoLeaks registers, before anything else, a cleanup that runs last:
// once the server is shut down, every goroutine started since must be gone.
func checkNoLeaks(b *testing.B) {
	before := runtime.NumGoroutine()
	b.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				b.Errorf("%d goroutines left after the benchmark (%d before):\n%s",
					runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// communityMember is one connected user with their open salon.
type communityMember struct {
	sess  *lclient.Session
	salon int
	last  int64 // newest message id seen in the salon
}

// deliveryLatencies collects delivery latencies while recording is on.
type deliveryLatencies struct {
	mu        sync.Mutex
	recording bool
	ns        []int64
}

func benchCommunity(b *testing.B, shape communityShape) {
	checkNoLeaks(b)
	addr, identity := benchServer(b, shape.users, shape.salons, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Baseline heap: server up, users in the database, nobody connected.
	base := benchMemNow()
	baseFDs := benchOpenFDs()
	oldRate := runtime.MemProfileRate
	runtime.MemProfileRate = 1 // attribute the sessions' heap to server or client

	members := make([]*communityMember, shape.users)
	var fail atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range communityLoginWorkers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < shape.users; i = int(next.Add(1) - 1) {
				m, err := joinCommunity(ctx, addr, identity, i, i%shape.salons)
				if err != nil {
					fail.CompareAndSwap(nil, fmt.Errorf("user %d: %w", i, err))
					return
				}
				members[i] = m
			}
		})
	}
	wg.Wait()
	defer func() { // bye, in parallel, the way people leave
		work := make(chan *communityMember)
		var bw sync.WaitGroup
		for range communityLoginWorkers {
			bw.Go(func() {
				for m := range work {
					bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
					m.sess.Bye(bctx)
					bcancel()
				}
			})
		}
		for _, m := range members {
			if m != nil {
				work <- m
			}
		}
		close(work)
		bw.Wait()
	}()
	if err, _ := fail.Load().(error); err != nil {
		runtime.MemProfileRate = oldRate
		b.Fatal(err)
	}

	// Everyone long-polls their salon from now on.
	lat := &deliveryLatencies{}
	start := time.Now()
	var polls sync.WaitGroup
	var pollErrs atomic.Int64
	for _, m := range members {
		polls.Go(func() { m.poll(ctx, start, lat, &pollErrs) })
	}
	defer polls.Wait() // runs after cancel (deferred later, runs first)
	defer cancel()

	// Let every fetch park, then measure the parked community.
	time.Sleep(time.Second)
	parked := benchMemNow()
	parkedFDs := benchOpenFDs()
	srvHeap, cliHeap := heapBySide()
	runtime.MemProfileRate = oldRate
	srvG, cliG := goroutinesBySide()

	// Send windows: one per iteration.
	perSalon := make([]int, shape.salons) // members of each salon
	for _, m := range members {
		perSalon[m.salon]++
	}
	var seq atomic.Int64
	expected := 0
	var sendLat []int64
	var sendMu sync.Mutex
	var sendErrs atomic.Int64
	lat.mu.Lock()
	lat.recording = true
	lat.mu.Unlock()
	cpu0 := benchCPUSeconds()
	b.ResetTimer()
	for iter := range b.N {
		var sw sync.WaitGroup
		var counts sync.Mutex
		for k := range shape.senders {
			m := members[k] // senders are spread over the salons like everyone
			rng := rand.New(rand.NewPCG(uint64(k), uint64(iter)))
			sw.Go(func() {
				end := time.Now().Add(shape.window)
				for {
					pause := time.Duration(rng.ExpFloat64() * float64(shape.meanInterval))
					if time.Now().Add(pause).After(end) {
						return
					}
					time.Sleep(pause)
					id := seq.Add(1)
					sent := time.Since(start)
					text := fmt.Sprintf("bench %d %d %s", id, sent.Nanoseconds(), strings.Repeat("x", 64))
					sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := m.sess.Send(sctx, communitySalons[m.salon], text, "c"+strconv.FormatInt(id, 10))
					scancel()
					if err != nil {
						sendErrs.Add(1)
						continue
					}
					d := time.Since(start) - sent
					counts.Lock()
					expected += perSalon[m.salon]
					counts.Unlock()
					sendMu.Lock()
					sendLat = append(sendLat, d.Nanoseconds())
					sendMu.Unlock()
				}
			})
		}
		sw.Wait()
	}
	cpu1 := benchCPUSeconds()
	// Drain: every communityMember's answer for the last messages (a poll in flight
	// comes back at once, an idle one within its wait).
	deadline := time.Now().Add(communityPollWait + 2*time.Second)
	for {
		lat.mu.Lock()
		got := len(lat.ns)
		lat.mu.Unlock()
		if got >= expected || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	lat.mu.Lock()
	lat.recording = false
	got := slices.Clone(lat.ns)
	lat.mu.Unlock()

	// Reported here: ResetTimer forgets the metrics reported before it.
	n := float64(shape.users)
	b.ReportMetric(float64(srvG)/n, "srv-goroutines/session")
	b.ReportMetric(float64(cliG)/n, "cli-goroutines/session")
	b.ReportMetric(float64(int64(parked.HeapAlloc)-int64(base.HeapAlloc))/n, "heap-B/session(both-ends)")
	b.ReportMetric(float64(srvHeap)/n, "srv-heap-B/session")
	b.ReportMetric(float64(cliHeap)/n, "cli-heap-B/session")
	b.ReportMetric(float64(int64(parked.StackInuse)-int64(base.StackInuse))/n, "stack-B/session(both-ends)")
	if cpu0 >= 0 && cpu1 >= 0 {
		b.ReportMetric((cpu1-cpu0)/(float64(b.N)*shape.window.Seconds()), "cpu-cores(both-ends)")
	}
	if baseFDs >= 0 && parkedFDs >= 0 {
		b.ReportMetric(float64(parkedFDs-baseFDs)/n, "fds/session(both-ends)")
	}
	b.ReportMetric(float64(seq.Load())/(float64(b.N)*shape.window.Seconds()), "sends/s")
	b.ReportMetric(float64(expected), "deliveries-expected")
	b.ReportMetric(float64(expected-len(got)), "deliveries-missing")
	b.ReportMetric(float64(sendErrs.Load()+pollErrs.Load()), "errors")
	b.ReportMetric(percentileMS(got, 50), "deliver-p50-ms")
	b.ReportMetric(percentileMS(got, 99), "deliver-p99-ms")
	b.ReportMetric(percentileMS(got, 100), "deliver-max-ms")
	b.ReportMetric(percentileMS(sendLat, 50), "ack-p50-ms")
	b.ReportMetric(percentileMS(sendLat, 99), "ack-p99-ms")
}

// joinCommunity dials, logs user i in and opens salon s the way the chat
// does: the latest messages first.
func joinCommunity(ctx context.Context, addr string, identity ed25519.PublicKey, i, s int) (*communityMember, error) {
	sess, err := benchDial(ctx, addr, identity)
	if err != nil {
		return nil, err
	}
	if _, err := sess.Login(ctx, benchPassword(i)); err != nil {
		sess.Close()
		return nil, err
	}
	m := &communityMember{sess: sess, salon: s}
	res, err := sess.Fetch(ctx, lclient.FetchRequest{Salon: communitySalons[s], Limit: 10})
	if err != nil {
		sess.Close()
		return nil, err
	}
	for _, msg := range res.Messages {
		m.last = max(m.last, msg.ID)
	}
	return m, nil
}

// poll long-polls the communityMember's salon until ctx ends, recording the delivery
// latency of every bench message it receives.
func (m *communityMember) poll(ctx context.Context, start time.Time, lat *deliveryLatencies, errs *atomic.Int64) {
	salon := communitySalons[m.salon]
	for ctx.Err() == nil {
		res, err := m.sess.Fetch(ctx, lclient.FetchRequest{Salon: salon, Limit: 50, After: m.last, HasAfter: true, Wait: communityPollWait})
		if err != nil {
			if ctx.Err() == nil {
				errs.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		now := time.Since(start)
		for _, msg := range res.Messages {
			m.last = max(m.last, msg.ID)
			var id, sent int64 // id: the message's number in the run
			if msg.System || !strings.HasPrefix(msg.Text, "bench ") {
				continue
			}
			if _, err := fmt.Sscanf(msg.Text, "bench %d %d ", &id, &sent); err != nil {
				continue
			}
			lat.mu.Lock()
			if lat.recording {
				lat.ns = append(lat.ns, now.Nanoseconds()-sent)
			}
			lat.mu.Unlock()
		}
	}
}

// benchLoginBurst has burst clients dial and log in at once, as after a
// server restart. Login time is from the login request to its answer;
// connect+login adds the dial and hello. Over the server's MaxPending
// (200) not-yet-logged-in connections, dials are refused "server full".
func benchLoginBurst(b *testing.B, burst int, productionKDF bool) {
	checkNoLeaks(b)
	addr, identity := benchServer(b, burst, 1, productionKDF)
	ctx := context.Background()
	var loginNS, totalNS []int64
	var allocated uint64
	lost, refused := 0, 0
	b.StopTimer() // setup (with production hashes) is not the burst
	b.ResetTimer()
	for range b.N {
		before := benchMemNow()
		b.StartTimer()
		sessions := make([]*lclient.Session, burst)
		login := make([]int64, burst)
		total := make([]int64, burst)
		errs := make([]error, burst)
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for i := range sessions {
			wg.Go(func() {
				<-gate
				t0 := time.Now()
				s, err := benchDial(ctx, addr, identity)
				if err != nil {
					errs[i] = err
					return
				}
				sessions[i] = s
				t1 := time.Now()
				_, errs[i] = s.Login(ctx, benchPassword(i))
				login[i] = time.Since(t1).Nanoseconds()
				total[i] = time.Since(t0).Nanoseconds()
			})
		}
		close(gate)
		wg.Wait()
		b.StopTimer()
		allocated += benchMemNow().TotalAlloc - before.TotalAlloc
		for _, s := range sessions {
			if s == nil {
				continue
			}
			bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			s.Bye(bctx)
			cancel()
		}
		// A login unanswered within the client's reply margin (5 s) is
		// "connection lost": the queue of hashes was too long.
		for i, err := range errs {
			switch {
			case err == nil:
				loginNS = append(loginNS, login[i])
				totalNS = append(totalNS, total[i])
			case errors.Is(err, lclient.ErrConnLost):
				lost++
			case lclient.IsCode(err, "unavailable"):
				refused++
			default:
				b.Fatalf("client %d: %v", i, err)
			}
		}
	}
	b.ReportMetric(float64(lost), "logins-lost")
	b.ReportMetric(float64(refused), "dials-refused")
	b.ReportMetric(percentileMS(loginNS, 50), "login-p50-ms")
	b.ReportMetric(percentileMS(loginNS, 99), "login-p99-ms")
	b.ReportMetric(percentileMS(totalNS, 99), "connect+login-p99-ms")
	b.ReportMetric(float64(allocated)/float64(b.N*burst)/(1<<20), "MiB-alloc/client")
}

// benchOpenFDs counts this process's open file descriptors (Linux; -1
// elsewhere).
func benchOpenFDs() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// benchCPUSeconds is the user+system CPU time of this process so far (Linux,
// assuming the usual 100 clock ticks a second; -1 elsewhere).
func benchCPUSeconds() float64 {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which ends at the last ')': state is
	// field 3, utime and stime are fields 14 and 15.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (utime + stime) / 100
}

func benchMemNow() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// heapBySide splits the live heap (as of the last GC, sampled at
// MemProfileRate) by the first librecord package found on each allocation's
// stack, innermost first: net/server, net/chat and db are the server;
// net/client is the client; shared packages (crypto, net) are skipped.
func heapBySide() (server, cli int64) {
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+100)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	for _, r := range recs {
		frames := runtime.CallersFrames(r.Stack())
		for {
			f, more := frames.Next()
			switch heapSide(f.Function) {
			case 's':
				server += r.InUseBytes()
			case 'c':
				cli += r.InUseBytes()
			default:
				if more {
					continue
				}
			}
			break
		}
	}
	return server, cli
}

func heapSide(fn string) byte {
	switch {
	case strings.HasPrefix(fn, "librecord/net/server."), strings.HasPrefix(fn, "librecord/net/chat."),
		strings.HasPrefix(fn, "librecord/db."):
		return 's'
	case strings.HasPrefix(fn, "librecord/net/client."):
		return 'c'
	}
	return 0
}

// goroutinesBySide counts the goroutines whose stack holds server code
// (net/server, net/chat) or client code (net/client).
func goroutinesBySide() (server, cli int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		switch {
		case bytes.Contains(g, []byte("librecord/net/server.")), bytes.Contains(g, []byte("librecord/net/chat.")):
			server++
		case bytes.Contains(g, []byte("librecord/net/client.")):
			cli++
		}
	}
	return server, cli
}

// percentileMS is the p-th percentile of ns, in milliseconds (0 when empty).
func percentileMS(ns []int64, p float64) float64 {
	if len(ns) == 0 {
		return 0
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)-1))
	return float64(s[i]) / 1e6
}
