package commands

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/urfave/cli/v2"

	"librecord/crypto"
	"librecord/db"
	lnet "librecord/net"
	"librecord/net/metrics"
	"librecord/net/server"
)

// serveConfig is what librecord serve runs with.
type serveConfig struct {
	Listen          string
	LogFormat       string // text or json
	ShutdownTimeout time.Duration
	Server          server.Config
	PruneEvery      time.Duration   // delete messages past their salon's retention this often; 0: never
	Metrics         stdnet.Listener // serve /metrics and /healthz on it; nil: none
	prune           pruneHooks      // tests: the pruner's clock and a report of each pass
	Web             webConfig       // --web... (serve_web.go)
}

func serveCommand() *cli.Command {
	d := server.DefaultConfig()
	return &cli.Command{
		Name:  "serve",
		Usage: "run the chat server (creates the database on first run)",
		Description: "Serves the Librecord protocol on --listen until SIGINT or SIGTERM, then stops\n" +
			"gracefully: parked fetches are answered, messages already received are stored\n" +
			"and acknowledged, the database is closed. Logs go to stderr.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: ":" + lnet.DefaultPort, Usage: "TCP `ADDRESS` to listen on"},
			&cli.DurationFlag{Name: "session-timeout", Value: d.Chat.SessionTimeout, Usage: "end a logged-in session after this long without a request"},
			&cli.DurationFlag{Name: "login-timeout", Value: d.LoginTimeout, Usage: "close a connection not logged in this long after it opened"},
			&cli.DurationFlag{Name: "login-pause", Value: d.LoginPause, Usage: "after a login refused on a connection, read its next request this long later, doubling up to 16 times (0: no pause)"},
			&cli.DurationFlag{Name: "poll", Value: d.Chat.Poll, Usage: "fetch cadence announced to clients"},
			&cli.DurationFlag{Name: "write-timeout", Value: d.WriteTimeout, Usage: "drop a peer that does not read an answer for this long"},
			&cli.IntFlag{Name: "max-conns", Value: d.MaxConns, Usage: "open connections at most (0: no limit)"},
			&cli.IntFlag{Name: "max-pending", Value: d.MaxPending, Usage: "connections not yet logged in at most (0: no limit)"},
			&cli.IntFlag{Name: "max-pending-per-source", Value: d.MaxPendingPerSource, Usage: "connections not yet logged in per source (IPv4 address, IPv6 /64) at most (0: no limit)"},
			&cli.IntFlag{Name: "login-limit", Value: d.Chat.LoginLimit, Usage: "failed logins per source (IPv4 address, IPv6 /64) within --login-window before refusing (0: no limit)"},
			&cli.IntFlag{Name: "login-limit-48", Value: d.Chat.LoginBlock, Usage: "failed logins per IPv6 /48 within --login-window before refusing (0: no limit)"},
			&cli.IntFlag{Name: "max-sessions-per-user", Value: d.Chat.MaxSessions, Usage: "logged-in sessions per user at most (0: no limit)"},
			&cli.IntFlag{Name: "max-parked", Value: d.Chat.MaxParked, Usage: "parked fetches per session; past it the oldest is answered early (0: no limit)"},
			&cli.IntFlag{Name: "log-per-source", Value: d.Chat.LogPerSource, Usage: "log lines a minute caused by one source not logged in (0: no limit)"},
			&cli.IntFlag{Name: "log-total", Value: d.Chat.LogTotal, Usage: "log lines a minute caused by all peers not logged in (0: no limit)"},
			&cli.DurationFlag{Name: "login-window", Value: d.Chat.LoginWindow, Usage: "window of --login-limit"},
			&cli.Float64Flag{Name: "send-rate", Value: d.Chat.SendRate, Usage: "sends per second per session (0: no limit)"},
			&cli.IntFlag{Name: "send-burst", Value: d.Chat.SendBurst, Usage: "sends a session may make at once above --send-rate"},
			&cli.IntFlag{Name: "max-message", Value: d.Chat.MaxMessage, Usage: "largest message text, in `BYTES`"},
			&cli.IntFlag{Name: "max-portions", Value: d.MaxPortions, Usage: "portions per frame, read and written"},
			&cli.IntFlag{Name: "max-fetch", Value: d.Chat.MaxFetch, Usage: "largest fetch limit"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 15 * time.Second, Usage: "on SIGINT/SIGTERM, wait this long for answers to go out"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json"},
			&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus /metrics and /healthz over HTTP on this `ADDRESS` (e.g. 127.0.0.1:9447; off by default)"},
			&cli.DurationFlag{Name: "prune-every", Value: DefaultPruneEvery, Usage: "delete messages older than their salon's retention at start and this often (0: never; see salon retain)"},
			// Developer tool (librecord bench --cpuprofile): the server's
			// CPU profile, written at shutdown, for go tool pprof.
			&cli.StringFlag{Name: "cpuprofile", Hidden: true},
		}, webFlags()...),
		Action: func(c *cli.Context) error {
			cfg := serveConfig{
				Listen:          c.String("listen"),
				LogFormat:       c.String("log-format"),
				ShutdownTimeout: c.Duration("shutdown-timeout"),
				Server:          d,
				PruneEvery:      c.Duration("prune-every"),
			}
			s := &cfg.Server
			s.Chat.SessionTimeout = c.Duration("session-timeout")
			s.LoginTimeout = c.Duration("login-timeout")
			s.LoginPause = c.Duration("login-pause")
			s.Chat.Poll = c.Duration("poll")
			s.WriteTimeout = c.Duration("write-timeout")
			s.MaxConns = c.Int("max-conns")
			s.MaxPending = c.Int("max-pending")
			s.MaxPendingPerSource = c.Int("max-pending-per-source")
			s.Chat.LoginLimit = c.Int("login-limit")
			s.Chat.LoginBlock = c.Int("login-limit-48")
			s.Chat.MaxSessions = c.Int("max-sessions-per-user")
			s.Chat.MaxParked = c.Int("max-parked")
			s.Chat.LogPerSource = c.Int("log-per-source")
			s.Chat.LogTotal = c.Int("log-total")
			s.Chat.LoginWindow = c.Duration("login-window")
			s.Chat.SendRate = c.Float64("send-rate")
			s.Chat.SendBurst = c.Int("send-burst")
			s.Chat.MaxMessage = c.Int("max-message")
			s.MaxPortions = c.Int("max-portions")
			s.Chat.MaxFetch = c.Int("max-fetch")
			if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
				return fmt.Errorf("--log-format %q: want text or json", cfg.LogFormat)
			}
			// Refuse bad limits before asking for a passphrase.
			if err := server.CheckLimits(cfg.Server); err != nil {
				return err
			}
			if cfg.ShutdownTimeout <= 0 {
				return errors.New("--shutdown-timeout must be positive")
			}
			if cfg.PruneEvery < 0 {
				return errors.New("--prune-every must be 0 (never) or positive")
			}
			var err error
			if cfg.Web, err = readWebFlags(c, *s); err != nil {
				return err
			}
			ln, err := stdnet.Listen("tcp", cfg.Listen)
			if err != nil {
				return withHint(fmt.Errorf("listen: %w", err), "choose another address with --listen (e.g. --listen :7448)")
			}
			if addr := c.String("metrics"); addr != "" {
				if cfg.Metrics, err = stdnet.Listen("tcp", addr); err != nil {
					ln.Close()
					return withHint(fmt.Errorf("metrics: listen: %w", err), "choose another address with --metrics (e.g. --metrics 127.0.0.1:9448)")
				}
			}
			closeAll := func() {
				ln.Close()
				if cfg.Metrics != nil {
					cfg.Metrics.Close()
				}
			}
			webLn, err := listenWeb(cfg.Web)
			if err != nil {
				closeAll()
				return err
			}
			d, err := openOrCreateDB(c)
			if err != nil {
				closeAll()
				if webLn != nil {
					webLn.Close()
				}
				return err
			}
			if path := c.String("cpuprofile"); path != "" {
				stop, err := startCPUProfile(path)
				if err != nil {
					closeAll()
					if webLn != nil {
						webLn.Close()
					}
					d.Close()
					return err
				}
				defer stop()
			}
			return runServe(c.Context, d, ln, webLn, cfg, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// runServe serves on ln until ctx ends, then shuts down gracefully and
// closes d. It prints the address and the identity fingerprint on stdout
// and logs on stderr.
func runServe(ctx context.Context, d *db.DB, ln, webLn stdnet.Listener, cfg serveConfig, stdout, stderr io.Writer) (err error) {
	defer func() {
		if cerr := d.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database: %w", cerr)
		}
	}()
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.LogFormat == "json" {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(handler)
	d.SetLogger(log) // messages that fail to decrypt are skipped and logged once
	var m *metrics.Metrics
	if cfg.Metrics != nil {
		m = metrics.New(moduleVersion(), vcsRevision(), runtime.Version())
		cfg.Server.Chat.Observer = m
	}
	srv, err := server.New(d, d.Identity(), cfg.Server, log)
	if err != nil {
		ln.Close()
		if cfg.Metrics != nil {
			cfg.Metrics.Close()
		}
		if webLn != nil {
			webLn.Close()
		}
		return err
	}
	if m != nil {
		m.Watch(srv, d)
		stopMetrics := serveMetrics(cfg.Metrics, m.Handler(), log)
		defer stopMetrics() // before the database closes
	}
	fingerprint := crypto.Fingerprint(d.Identity().Public().(ed25519.PublicKey))
	fmt.Fprintf(stdout, "librecord: serving %s on %s\nlibrecord: identity fingerprint %s\n", d.Path(), ln.Addr(), fingerprint)
	log.Info("serving", "addr", ln.Addr().String(), "fingerprint", fingerprint)
	if msg, ok := fdShortage(cfg.Server.MaxConns); ok {
		log.Warn(msg)
	}
	if d.WeakKDF() {
		log.Warn("this database was created with the test-only --insecure-test-kdf: its passphrase and passwords are cheap to guess; do not use it for a real community")
	}

	stopPruner := startPruner(d, cfg.PruneEvery, log, cfg.prune)
	defer stopPruner() // before the database closes

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	webSrv := startWeb(webLn, cfg.Web, srv, log, stdout)
	if err := sdNotify("READY=1\nSTATUS=serving on " + ln.Addr().String()); err != nil {
		log.Warn("systemd notification", "err", err)
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-served:
		log.Error("accept failed, shutting down", "err", serveErr)
	}
	if err := sdNotify("STOPPING=1"); err != nil {
		log.Warn("systemd notification", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if webSrv != nil {
		webSrv.Shutdown(sctx) // after srv: its WebSockets got their last answers
	}
	if err != nil {
		return err
	}
	if serveErr == nil {
		serveErr = <-served
	}
	if !errors.Is(serveErr, server.ErrServerClosed) {
		return serveErr
	}
	log.Info("stopped")
	return nil
}

// fdReserve is what serve needs besides one descriptor per connection: the
// SQLite file, its WAL and shared memory for each pooled connection, the
// listener, logs.
const fdReserve = 64

// fdShortage says whether --max-conns connections would run the process out
// of file descriptors first: then new clients hang in the kernel's accept
// queue instead of getting a clear "unavailable".
func fdShortage(maxConns int) (string, bool) {
	limit, ok := openFileLimit()
	if !ok || maxConns <= 0 || uint64(maxConns)+fdReserve <= limit {
		return "", false
	}
	return fmt.Sprintf("--max-conns %d needs about %d open files but the limit is %d: raise it (systemd: LimitNOFILE=; shell: ulimit -n) or lower --max-conns to %d",
		maxConns, maxConns+fdReserve, limit, max(0, int(limit)-fdReserve)), true
}
