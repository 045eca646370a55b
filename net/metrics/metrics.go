// Package metrics exposes a running server's metrics in the Prometheus
// text format (serve --metrics), through the Prometheus Go client, every
// name prefixed librecord_, and a /healthz that answers 200 while the
// database answers a read. It implements chat.Observer for the events
// (logins, acks, commits, fetches, storage errors) and reads the gauges
// (connections, sessions, parked fetches, messages per salon) at scrape
// time.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"librecord/db"
	"librecord/net/chat"
	"librecord/net/server"
)

// Prefix starts every metric name.
const Prefix = "librecord_"

// Server is what the gauges read at scrape time; *server.Server is one.
type Server interface {
	Stats() server.Stats
}

// Store is what the per-salon gauge and /healthz read; *db.DB is one.
type Store interface {
	Salons(ctx context.Context) ([]db.SalonInfo, error)
	Healthy(ctx context.Context) error
}

// ScrapeTimeout bounds the database reads of one scrape or health check.
const ScrapeTimeout = 5 * time.Second

// Metrics is a registry of Librecord's metrics. Create it with New, give
// it to the hub as its Observer, then Watch the server and store.
type Metrics struct {
	reg   *prometheus.Registry
	wrap  prometheus.Registerer // reg, adding Prefix to every name
	store Store

	logins        *prometheus.CounterVec
	acked         prometheus.Counter
	deliveries    prometheus.Counter
	storageErrors prometheus.Counter
	commitErrors  prometheus.Counter
	commitBatch   prometheus.Histogram
	commitSeconds prometheus.Histogram
	fetchSeconds  prometheus.Histogram
}

var _ chat.Observer = (*Metrics)(nil)

// New registers the event metrics, the build information and the Go
// runtime and process collectors (as librecord_go_*, librecord_process_*).
func New(version, revision, goVersion string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, wrap: prometheus.WrapRegistererWithPrefix(Prefix, reg)}
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "logins_total",
		Help: "Logins by result: ok, failed (wrong password), disabled (user disabled by the host), rate_limited (refused unchecked), too_many_sessions (the user's sessions at the cap).",
	}, []string{"result"})
	for _, r := range []string{chat.LoginOK, chat.LoginFailed, chat.LoginDisabled, chat.LoginRateLimited, chat.LoginTooMany} {
		m.logins.WithLabelValues(r) // present at 0 from the start
	}
	m.acked = prometheus.NewCounter(prometheus.CounterOpts{Name: "sends_acked_total",
		Help: "Sends acknowledged (the message durably stored; retries of a stored cid included)."})
	m.deliveries = prometheus.NewCounter(prometheus.CounterOpts{Name: "deliveries_total",
		Help: "Messages carried in fetch answers."})
	m.storageErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "storage_errors_total",
		Help: "Requests answered unavailable or internal because storage failed."})
	m.commitErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "commit_errors_total",
		Help: "Group commits that failed (nothing of the batch stored)."})
	m.commitBatch = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "commit_batch_messages",
		Help:    "Messages stored by one group commit (one transaction, one sync).",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500}})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "commit_seconds",
		Help:    "Duration of one group commit, sync included.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5}})
	m.fetchSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fetch_read_seconds",
		Help:    "Time a fetch took to read and decrypt its messages (a parked fetch: once woken).",
		Buckets: []float64{.0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25}})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "build_info",
		Help:        "Always 1; the labels say which librecord this is.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion}})
	build.Set(1)
	m.wrap.MustRegister(m.logins, m.acked, m.deliveries, m.storageErrors, m.commitErrors,
		m.commitBatch, m.commitSeconds, m.fetchSeconds, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Login implements chat.Observer.
func (m *Metrics) Login(outcome string) { m.logins.WithLabelValues(outcome).Inc() }

// Acked implements chat.Observer.
func (m *Metrics) Acked() { m.acked.Inc() }

// Committed implements chat.Observer.
func (m *Metrics) Committed(n int, took time.Duration, err error) {
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commitBatch.Observe(float64(n))
	m.commitSeconds.Observe(took.Seconds())
}

// FetchRead implements chat.Observer.
func (m *Metrics) FetchRead(took time.Duration) { m.fetchSeconds.Observe(took.Seconds()) }

// Delivered implements chat.Observer.
func (m *Metrics) Delivered(n int) { m.deliveries.Add(float64(n)) }

// StorageError implements chat.Observer.
func (m *Metrics) StorageError() { m.storageErrors.Inc() }

// Watch registers the gauges read at scrape time from srv and store.
func (m *Metrics) Watch(srv Server, store Store) {
	m.store = store
	gauge := func(name, help string, f func(server.Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f(srv.Stats())) })
	}
	m.wrap.MustRegister(
		gauge("connections_open", "Open client connections.", func(s server.Stats) int { return s.Conns }),
		gauge("connections_pending", "Connections not logged in yet.", func(s server.Stats) int { return s.Pending }),
		gauge("sessions_logged_in", "Live logged-in sessions (resumable ones included).", func(s server.Stats) int { return s.LoggedIn }),
		gauge("fetches_parked", "Fetches parked, waiting for a message.", func(s server.Stats) int { return s.Parked }),
		&salonCollector{store: store, desc: prometheus.NewDesc("salon_messages",
			"Messages stored in the salon.", []string{"salon"}, nil)},
	)
}

// salonCollector reads the message count of every salon at scrape time
// (one indexed count per salon). Registered through the prefixing
// registerer, like the others, its name gets Prefix.
type salonCollector struct {
	store Store
	desc  *prometheus.Desc
}

func (c *salonCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *salonCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	salons, err := c.store.Salons(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, s := range salons {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.Messages), s.Name)
	}
}

// Handler serves /metrics (the registry, in the Prometheus text format;
// a collector that fails is reported and the others still served) and
// /healthz (200 "ok" while the store answers a read, 503 otherwise).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Timeout: ScrapeTimeout}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if m.store == nil {
			http.Error(w, "not serving yet", http.StatusServiceUnavailable)
			return
		}
		if err := m.store.Healthy(ctx); err != nil {
			http.Error(w, "database does not answer", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	return mux
}
