package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"librecord/crypto"
	lnet "librecord/net"
	"librecord/net/client"
	"librecord/repl"
)

// ChatConfig is what `librecord chat` runs with.
type ChatConfig struct {
	Server       string
	Salon        string
	SalonGiven   bool
	PasswordFile string
	// PasswordEnv is the value of LIBRECORD_PASSWORD ("" when unset).
	PasswordEnv     string
	Trust           string
	Poll            time.Duration
	ReconnectWindow time.Duration
	ReloginDelay    time.Duration
	ReplyTimeout    time.Duration
	LoginTimeout    time.Duration
	RetryDelay      time.Duration
	ReloginJitter   time.Duration
	// NoBell: mentions of the user are highlighted without a bell.
	NoBell bool
	// ConfigDir holds known_servers and the input history.
	ConfigDir string
	// InterruptGrace is how long, after a signal, the interactive chat may
	// take to end before it is abandoned (a password prompt ignores it).
	InterruptGrace time.Duration
}

// defaultInterruptGrace is ChatConfig.InterruptGrace for the command.
const defaultInterruptGrace = 3 * time.Second

func chatCommand() *cli.Command {
	return &cli.Command{
		Name:  "chat",
		Usage: "chat on a Librecord server (a line REPL on a terminal; lines in, messages out when piped)",
		Description: "On a terminal: log in, open a salon and chat; /help lists the commands.\n" +
			"Piped: each input line is sent to --salon, incoming messages are written as\n" +
			"\"<RFC3339 time> <salon> <pseudo>: <text>\"; the password then comes from\n" +
			"--password-file or LIBRECORD_PASSWORD, and a new server needs --trust.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "server", Value: "localhost:" + lnet.DefaultPort, EnvVars: []string{"LIBRECORD_SERVER"}, Usage: "server `HOST:PORT`"},
			&cli.StringFlag{Name: "salon", Value: "general", Usage: "salon to open (and, piped, to send to)"},
			&cli.StringFlag{Name: "password-file", Usage: "read the password from `FILE` (first line) instead of asking; also LIBRECORD_PASSWORD"},
			&cli.StringFlag{Name: "trust", Usage: "trust the server if its identity fingerprint is `SHA256:...` (as librecord serve prints it)"},
			&cli.DurationFlag{Name: "poll", DefaultText: "poll_ms announced by the server", Usage: "fetch at least this often (a `DURATION` like 3s)"},
			&cli.DurationFlag{Name: "reconnect-window", DefaultText: "the server's session timeout minus 5s", Usage: "try to resume a lost connection for this `DURATION`"},
			&cli.DurationFlag{Name: "relogin-delay", Value: 7 * time.Second, Usage: "wait this `DURATION` before logging in again when resuming failed"},
			&cli.DurationFlag{Name: "reply-timeout", Value: 5 * time.Second, Usage: "a request unanswered this `DURATION` (beyond a fetch's wait) means the connection is dead"},
			&cli.DurationFlag{Name: "login-timeout", Value: client.DefaultLoginTimeout, Usage: "a login unanswered this `DURATION` means the connection is dead (the server may be hashing many passwords at once)"},
			&cli.DurationFlag{Name: "retry-delay", Value: time.Second, Usage: "`DURATION` between reconnect attempts and before re-sending a rate-limited message"},
			&cli.DurationFlag{Name: "relogin-jitter", Value: 3 * time.Second, Usage: "when the server forgot the session (it restarted), wait a random delay up to this `DURATION` before logging in again from the password file (0: none)"},
			&cli.BoolFlag{Name: "no-bell", Usage: "do not ring the terminal bell when a message mentions you (it is still highlighted)"},
		},
		Action: func(c *cli.Context) error {
			dir, err := chatConfigDir()
			if err != nil {
				return err
			}
			cfg := ChatConfig{
				Server:          c.String("server"),
				Salon:           c.String("salon"),
				SalonGiven:      c.IsSet("salon"),
				PasswordFile:    c.String("password-file"),
				PasswordEnv:     os.Getenv("LIBRECORD_PASSWORD"),
				Trust:           c.String("trust"),
				Poll:            c.Duration("poll"),
				ReconnectWindow: c.Duration("reconnect-window"),
				ReloginDelay:    c.Duration("relogin-delay"),
				ReplyTimeout:    c.Duration("reply-timeout"),
				LoginTimeout:    c.Duration("login-timeout"),
				RetryDelay:      c.Duration("retry-delay"),
				ReloginJitter:   c.Duration("relogin-jitter"),
				NoBell:          c.Bool("no-bell"),
				ConfigDir:       dir,
				InterruptGrace:  defaultInterruptGrace,
			}
			in, out, errOut := c.App.Reader, c.App.Writer, c.App.ErrWriter
			if in == nil {
				in = os.Stdin
			}
			if errOut == nil {
				errOut = os.Stderr
			}
			if isTerminal(in) && isTerminal(out) {
				return RunChatInteractive(c.Context, cfg)
			}
			return RunChatScript(c.Context, cfg, in, out, errOut)
		},
	}
}

// isTerminal reports whether v is the process's stdin or stdout and a
// terminal (liner only drives those).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && (f == os.Stdin || f == os.Stdout) && term.IsTerminal(int(f.Fd()))
}

// chatConfigDir is $LIBRECORD_CONFIG_DIR, else librecord/ in the user's
// configuration directory.
func chatConfigDir() (string, error) {
	if d := os.Getenv("LIBRECORD_CONFIG_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", withHint(fmt.Errorf("find the configuration directory: %w", err), "set LIBRECORD_CONFIG_DIR")
	}
	return filepath.Join(d, "librecord"), nil
}

// replConfig checks cfg and turns it into the REPL's settings.
func (cfg ChatConfig) replConfig() (repl.Config, error) {
	if cfg.Trust != "" {
		if _, err := crypto.ParseFingerprint(cfg.Trust); err != nil {
			return repl.Config{}, fmt.Errorf("--trust: %w", err)
		}
	}
	for name, d := range map[string]time.Duration{"--poll": cfg.Poll, "--reconnect-window": cfg.ReconnectWindow,
		"--relogin-delay": cfg.ReloginDelay, "--reply-timeout": cfg.ReplyTimeout, "--retry-delay": cfg.RetryDelay,
		"--login-timeout": cfg.LoginTimeout, "--relogin-jitter": cfg.ReloginJitter} {
		if d < 0 {
			return repl.Config{}, fmt.Errorf("%s must not be negative", name)
		}
	}
	if cfg.Poll > 0 && cfg.Poll < 100*time.Millisecond {
		return repl.Config{}, errors.New("--poll must be at least 100ms")
	}
	rc := repl.Config{
		Addr:            cfg.Server,
		Salon:           cfg.Salon,
		SalonGiven:      cfg.SalonGiven,
		Poll:            cfg.Poll,
		ReconnectWindow: cfg.ReconnectWindow,
		ReloginDelay:    cfg.ReloginDelay,
		RetryDelay:      cfg.RetryDelay,
		ReloginJitter:   cfg.ReloginJitter,
		NoBell:          cfg.NoBell,
	}
	switch {
	case cfg.PasswordFile != "":
		file := cfg.PasswordFile
		rc.PasswordSource = file
		rc.PasswordFile = file
		rc.Password = func() (string, error) { return readPasswordFile(file) }
		if _, err := rc.Password(); err != nil {
			return repl.Config{}, err
		}
	case cfg.PasswordEnv != "":
		pw := cfg.PasswordEnv
		rc.PasswordSource = "LIBRECORD_PASSWORD"
		rc.Password = func() (string, error) { return pw, nil }
	}
	return rc, nil
}

// readPasswordFile returns the first line of file, without its line end.
func readPasswordFile(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", file)
	}
	return pw, nil
}

// dialer returns the REPL's Dialer: a client session to cfg.Server whose
// identity is checked against the known-servers file.
func (cfg ChatConfig) dialer() repl.Dialer {
	addr := cfg.Server
	if norm, err := client.NormaliseServerAddr(addr); err == nil {
		addr = norm // adds the default port
	}
	path := filepath.Join(cfg.ConfigDir, client.KnownServersFile)
	return func(ctx context.Context, ask repl.AskTrust) (repl.Session, error) {
		known, err := client.LoadKnownServers(path)
		if err != nil {
			return nil, err
		}
		trust := client.Trust{Known: known, Pinned: cfg.Trust, Ask: ask}
		s, err := client.Dial(ctx, client.Config{Addr: addr, CheckIdentity: trust.Check,
			ReplyMargin: cfg.ReplyTimeout, LoginTimeout: cfg.LoginTimeout})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// RunChatInteractive runs the chat on the terminal.
func RunChatInteractive(ctx context.Context, cfg ChatConfig) error {
	rc, err := cfg.replConfig()
	if err != nil {
		return err
	}
	t := repl.NewLinerTerminal(filepath.Join(cfg.ConfigDir, "history"))
	defer t.Close()
	done := make(chan error, 1)
	go func() { done <- repl.RunInteractive(ctx, rc, cfg.dialer(), t) }()
	// On return the deferred Close restores the terminal; if the chat did
	// not end, main's exit ends its prompt.
	return waitInterruptible(ctx, done, cfg.InterruptGrace)
}

// errInterrupted: a signal came and the chat did not end within its grace.
var errInterrupted = errors.New("interrupted")

// waitInterruptible returns what done delivers. A signal (ctx ending)
// normally ends the chat cleanly (bye, keys erased), but a prompt that
// cannot be interrupted (the password) may hold it: once ctx has ended,
// waitInterruptible waits at most grace for done, then returns
// errInterrupted.
func waitInterruptible(ctx context.Context, done <-chan error, grace time.Duration) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return errInterrupted
	}
}

// RunChatScript runs the scripted chat: lines of in sent to cfg.Salon,
// incoming messages written to out.
func RunChatScript(ctx context.Context, cfg ChatConfig, in io.Reader, out, errOut io.Writer) error {
	rc, err := cfg.replConfig()
	if err != nil {
		return err
	}
	if rc.Password == nil {
		return withHint(errors.New("no password: stdin is not a terminal, so nobody can type it"),
			"pass --password-file FILE or set LIBRECORD_PASSWORD")
	}
	return repl.RunScript(ctx, rc, cfg.dialer(), in, out, errOut)
}
