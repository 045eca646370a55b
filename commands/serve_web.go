package commands

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"net/http"
	"net/netip"

	"github.com/urfave/cli/v2"

	"librecord/net/server"
	"librecord/net/web"
)

// webConfig is the browser side of librecord serve (--web...).
type webConfig struct {
	Listen string // "" = no web page
	Cert   string
	Key    string
	Web    web.Config
}

func webFlags() []cli.Flag {
	d := web.DefaultConfig()
	return []cli.Flag{
		&cli.StringFlag{Name: "web", Usage: "also serve the web page and the protocol over WebSocket on this HTTP `ADDRESS` (off by default)"},
		&cli.StringFlag{Name: "web-cert", Usage: "TLS certificate `FILE` (PEM) for --web: serve HTTPS and WSS"},
		&cli.StringFlag{Name: "web-key", Usage: "TLS private key `FILE` (PEM) for --web-cert"},
		&cli.StringSliceFlag{Name: "web-trusted-proxy", Usage: "take the client's address from X-Forwarded-For when the peer is in this `CIDR` (repeat or comma-separate; none by default)"},
		&cli.DurationFlag{Name: "web-header-timeout", Value: d.ReadHeaderTimeout, Usage: "time a client has to send an HTTP request's headers"},
		&cli.DurationFlag{Name: "web-idle-timeout", Value: d.IdleTimeout, Usage: "close an idle keep-alive HTTP connection after this long"},
	}
}

// readWebFlags turns the --web flags into a webConfig; the server's
// --max-portions bounds a WebSocket message, and its --login-timeout is
// the Retry-After of an upgrade refused for a full source (by then every
// undecided connection of the source has been decided).
func readWebFlags(c *cli.Context, s server.Config) (webConfig, error) {
	cfg := webConfig{Listen: c.String("web"), Cert: c.String("web-cert"), Key: c.String("web-key"), Web: web.DefaultConfig()}
	cfg.Web.MaxPortions = s.MaxPortions
	cfg.Web.RetryAfter = s.LoginTimeout
	cfg.Web.ReadHeaderTimeout = c.Duration("web-header-timeout")
	cfg.Web.IdleTimeout = c.Duration("web-idle-timeout")
	proxies, err := web.ParseProxies(c.StringSlice("web-trusted-proxy"))
	if err != nil {
		return cfg, err
	}
	cfg.Web.TrustedProxies = proxies
	if cfg.Listen == "" {
		if cfg.Cert != "" || cfg.Key != "" || len(proxies) > 0 {
			return cfg, errors.New("--web-cert, --web-key and --web-trusted-proxy need --web ADDRESS")
		}
		return cfg, nil
	}
	if (cfg.Cert == "") != (cfg.Key == "") {
		return cfg, errors.New("--web-cert and --web-key go together")
	}
	if cfg.Web.ReadHeaderTimeout <= 0 || cfg.Web.IdleTimeout <= 0 {
		return cfg, errors.New("--web-header-timeout and --web-idle-timeout must be positive")
	}
	if cfg.Cert != "" {
		pair, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return cfg, withHint(fmt.Errorf("load --web-cert/--web-key: %w", err), "give a PEM certificate and its private key")
		}
		cfg.Web.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	return cfg, nil
}

// listenWeb opens the --web listener, or returns nil when there is none.
func listenWeb(cfg webConfig) (stdnet.Listener, error) {
	if cfg.Listen == "" {
		return nil, nil
	}
	ln, err := stdnet.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, withHint(fmt.Errorf("listen --web: %w", err), "choose another address with --web (e.g. --web 127.0.0.1:8081)")
	}
	return ln, nil
}

// startWeb serves the page on ln (if any) and prints its address.
func startWeb(ln stdnet.Listener, cfg webConfig, srv *server.Server, log *slog.Logger, stdout io.Writer) *web.Server {
	if ln == nil {
		return nil
	}
	scheme := "http"
	if cfg.Web.TLS != nil {
		scheme = "https"
	}
	ws := web.New(srv, cfg.Web, log)
	fmt.Fprintf(stdout, "librecord: web page on %s://%s/\n", scheme, ln.Addr())
	log.Info("serving web page", "addr", ln.Addr().String(), "tls", cfg.Web.TLS != nil)
	if cfg.Web.TLS == nil && !loopbackOnly(ln.Addr()) {
		log.Warn("the web page is served over plain HTTP on a non-loopback address: anyone on the path can change the page and read everything typed in it; use --web-cert/--web-key or a TLS reverse proxy")
	}
	go func() {
		if err := ws.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("web page stopped", "err", err)
		}
	}()
	return ws
}

func loopbackOnly(a stdnet.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}
