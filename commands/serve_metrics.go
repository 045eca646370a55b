package commands

import (
	"context"
	"errors"
	"log/slog"
	stdnet "net"
	"net/http"
	"time"
)

// serveMetrics serves h (metrics and health) over HTTP on ln until the
// returned stop is called. Scrapes are small: tight timeouts keep a slow
// or idle peer from holding a connection.
func serveMetrics(ln stdnet.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("serving metrics", "addr", ln.Addr().String(), "paths", "/metrics /healthz")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
		}
		<-done
	}
}
