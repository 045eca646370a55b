package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"librecord/db"
	lnet "librecord/net"
	"librecord/net/bench"
)

// BenchConfig is what `librecord bench` runs with.
type BenchConfig struct {
	Shape     string
	Overrides bench.Overrides
	Settings  bench.Settings
	JSON      bool
	// Addr drives a running server (its users' passwords in
	// PasswordFile, its identity pinned by Trust) instead of a child.
	Addr         string
	PasswordFile string
	Trust        string
	ServerPID    int
	// CPUProfile asks the child server for a CPU profile (per shape).
	CPUProfile string
	// WebSocket runs every shape twice, over TCP then over WebSocket
	// (the child serving --web), to compare the transports.
	WebSocket bool
	// Exe is the librecord binary started as the child server.
	Exe string
}

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure a server under load: throughput, latency, server CPU and memory",
		Description: "By default starts `librecord serve` as a child process on a temporary database\n" +
			"with its own users and its throttling limits switched off, drives it with real\n" +
			"clients (hello, login, sealed requests, durable acks, long-polls at the protocol's\n" +
			"cadence), reads the server's CPU time and memory from /proc, and removes\n" +
			"everything it created. Shapes:\n" +
			"  community  100 sessions long-polling, 5 of them sending 4 msg/s each\n" +
			"  send       50 senders, one send in flight each (durable ingest)\n" +
			"  fanout     10 sessions, all sending as fast as acks return, all receiving\n" +
			"  idle       1000 sessions long-polling, no traffic\n" +
			"With --addr it drives a running server instead: the users are the host's (one\n" +
			"password a line in --password-file), it sends only to --salon, paces its\n" +
			"logins and changes nothing else there. With --ws every shape runs twice, over\n" +
			"TCP then over WebSocket (the started server serving --web), side by side.\n" +
			"Progress goes to stderr.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "shape", Value: "community", Usage: "load shape: " + bench.ShapeNames() + " or all"},
			&cli.IntFlag{Name: "sessions", DefaultText: "the shape's", Usage: "sessions logged in"},
			&cli.IntFlag{Name: "senders", DefaultText: "the shape's", Usage: "sessions that send"},
			&cli.Float64Flag{Name: "rate", DefaultText: "the shape's", Usage: "messages a second per sender, 0 for as fast as acks return"},
			&cli.IntFlag{Name: "size", Value: bench.DefaultSize, Usage: "message text in `BYTES`"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "measured window per shape"},
			&cli.StringFlag{Name: "addr", Usage: "drive the running server at `HOST:PORT` instead of starting one"},
			&cli.StringFlag{Name: "password-file", Usage: "with --addr: read the users' passwords from `FILE`, one a line"},
			&cli.StringFlag{Name: "trust", Usage: "with --addr: trust the server if its identity fingerprint is `SHA256:...` (as serve prints it)"},
			&cli.StringFlag{Name: "salon", Value: db.DefaultSalon, Usage: "salon the messages go to"},
			&cli.IntFlag{Name: "server-pid", DefaultText: "none", Usage: "with --addr: the server's process id, to read its CPU and memory (same machine)"},
			&cli.IntFlag{Name: "login-workers", Value: 16, DefaultText: "16; with --addr 2", Usage: "logins in flight at once"},
			&cli.Float64Flag{Name: "login-rate", DefaultText: "no bound; with --addr 5", Usage: "logins a second at most (0: no bound)"},
			&cli.BoolFlag{Name: "json", Usage: "print the results as one JSON object"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write the started server's CPU profile to `FILE` (FILE.SHAPE with --shape all, FILE[.SHAPE].tcp and .ws with --ws)"},
			&cli.StringFlag{Name: "client-cpuprofile", Usage: "write the CPU profile of bench itself (its clients) to `FILE`"},
			&cli.BoolFlag{Name: "ws", Usage: "also run each shape over WebSocket (serve --web), next to TCP; not with --addr"},
		},
		Action: func(c *cli.Context) error {
			if file := c.String("client-cpuprofile"); file != "" {
				stop, err := startCPUProfile(file)
				if err != nil {
					return err
				}
				defer stop()
			}
			cfg := BenchConfig{
				Shape:        c.String("shape"),
				JSON:         c.Bool("json"),
				Addr:         c.String("addr"),
				PasswordFile: c.String("password-file"),
				Trust:        c.String("trust"),
				ServerPID:    c.Int("server-pid"),
				CPUProfile:   c.String("cpuprofile"),
				WebSocket:    c.Bool("ws"),
				Settings: bench.Settings{
					Duration:     c.Duration("duration"),
					Salon:        c.String("salon"),
					LoginWorkers: c.Int("login-workers"),
					LoginRate:    c.Float64("login-rate"),
					Settle:       time.Second,
					Drain:        5 * time.Second,
				},
			}
			if c.IsSet("sessions") {
				cfg.Overrides.Sessions = ptrTo(c.Int("sessions"))
			}
			if c.IsSet("senders") {
				cfg.Overrides.Senders = ptrTo(c.Int("senders"))
			}
			if c.IsSet("rate") {
				cfg.Overrides.Rate = ptrTo(c.Float64("rate"))
			}
			if c.IsSet("size") {
				cfg.Overrides.Size = ptrTo(c.Int("size"))
			}
			if cfg.Addr != "" {
				if !c.IsSet("login-workers") {
					cfg.Settings.LoginWorkers = 2
				}
				if !c.IsSet("login-rate") {
					cfg.Settings.LoginRate = 5
				}
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the librecord binary: %w", err)
			}
			cfg.Exe = exe
			return RunBench(c.Context, cfg, c.App.Writer, c.App.ErrWriter)
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// RunBench runs the shapes of cfg and prints the report on stdout (a
// table, or JSON), progress on stderr.
func RunBench(ctx context.Context, cfg BenchConfig, stdout, stderr io.Writer) error {
	shapes, err := bench.Select(cfg.Shape, cfg.Overrides)
	if err != nil {
		return err
	}
	if cfg.Settings.Duration <= 0 {
		return errors.New("--duration must be positive")
	}
	if !lnet.ValidName(cfg.Settings.Salon) {
		return fmt.Errorf("--salon %q is not a salon name", cfg.Settings.Salon)
	}
	if cfg.Settings.LoginWorkers < 1 || cfg.Settings.LoginRate < 0 {
		return errors.New("--login-workers must be at least 1 and --login-rate not negative")
	}
	var target *bench.Target
	if cfg.Addr != "" {
		if target, err = addrTarget(cfg); err != nil {
			return err
		}
		if cfg.WebSocket {
			return errors.New("--ws drives the server bench starts, not --addr: run it without --addr")
		}
	} else if cfg.PasswordFile != "" || cfg.Trust != "" || cfg.ServerPID != 0 {
		return errors.New("--password-file, --trust and --server-pid go with --addr")
	}
	for _, s := range shapes {
		if err := checkOpenFiles(s.Sessions); err != nil {
			return err
		}
	}

	report := &bench.Report{Server: "child", Addr: cfg.Addr, CPUs: runtime.NumCPU(), FloorSize: floorBody(shapes)}
	if cfg.Addr != "" {
		report.Server = "addr"
	}
	// The floor first, while nothing else of ours runs.
	if report.FloorUS, err = bench.Floor(report.FloorSize, 200*time.Millisecond); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: crypto floor %.1f µs\n", report.FloorUS)
	transports := []bool{false}
	if cfg.WebSocket {
		transports = append(transports, true)
	}
	for _, shape := range shapes {
		for _, ws := range transports {
			res, err := runShape(ctx, cfg, target, shape, ws, len(shapes) > 1, report, stderr)
			if err != nil {
				return err
			}
			report.Add(res)
		}
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	return report.WriteTable(stdout)
}

// runShape runs one shape against target, or against a child server
// started for it (and stopped after it: each shape starts afresh).
// With ws the child also serves --web and the clients use WebSockets.
func runShape(ctx context.Context, cfg BenchConfig, target *bench.Target, shape bench.Shape, ws, several bool, report *bench.Report, stderr io.Writer) (bench.Result, error) {
	if target != nil {
		return bench.Run(ctx, *target, shape, cfg.Settings, stderr)
	}
	transport := "tcp"
	if ws {
		transport = "ws"
	}
	var extra []string
	if cfg.CPUProfile != "" {
		file := cfg.CPUProfile
		if several {
			file += "." + shape.Name
		}
		if cfg.WebSocket {
			file += "." + transport
		}
		extra = append(extra, "--cpuprofile", file)
	}
	fmt.Fprintf(stderr, "bench %s over %s: creating %d users and starting the server\n", shape.Name, transport, shape.Sessions)
	child, err := bench.StartChild(ctx, bench.ChildConfig{Exe: cfg.Exe, Users: shape.Sessions, Extra: extra, WebSocket: ws})
	if err != nil {
		return bench.Result{}, err
	}
	if !ws || report.ServeArgs == nil {
		report.ServeArgs, report.Unthrottled = child.Args, child.Unthrottled
	}
	res, err := bench.Run(ctx, child.Target, shape, cfg.Settings, stderr)
	if serr := child.Stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return res, fmt.Errorf("%w\nserver log:\n%s", err, child.Log(10))
	}
	return res, nil
}

// floorBody is the size of the body the floor is measured with: the
// largest request of the shapes (a send of their text).
func floorBody(shapes []bench.Shape) int {
	size := 0
	for _, s := range shapes {
		size = max(size, s.Size)
	}
	return size + len(`{"op":"send","id":1000,"salon":"general","text":"","cid":"bench-01234567-1000"}`)
}

// addrTarget reads the passwords of a running server's users and pins its
// identity.
func addrTarget(cfg BenchConfig) (*bench.Target, error) {
	if cfg.PasswordFile == "" {
		return nil, errors.New("--addr needs --password-file: the passwords of the users to log in as, one a line")
	}
	if cfg.Trust == "" {
		return nil, errors.New("--addr needs --trust SHA256:...: the server's identity fingerprint (librecord serve prints it; librecord fingerprint shows it)")
	}
	f, err := os.Open(cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var passwords []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pw := strings.TrimSuffix(sc.Text(), "\r"); pw != "" {
			passwords = append(passwords, pw)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.PasswordFile, err)
	}
	if len(passwords) == 0 {
		return nil, fmt.Errorf("%s holds no password", cfg.PasswordFile)
	}
	addr := cfg.Addr
	if !strings.Contains(addr, ":") {
		addr += ":" + lnet.DefaultPort
	}
	return &bench.Target{Addr: addr, CheckIdentity: bench.CheckFingerprint(cfg.Trust), Passwords: passwords, PID: cfg.ServerPID}, nil
}

// checkOpenFiles refuses a run that would run out of file descriptors:
// one per session in this process (the child server raises its own limit
// to the same hard limit at start, as every Go program does, and needs as
// many).
func checkOpenFiles(sessions int) error {
	limit, ok := openFileLimit()
	if !ok {
		return nil
	}
	need := uint64(sessions) + fdReserve
	if need > limit {
		return withHint(fmt.Errorf("%d sessions need about %d open files but the limit is %d", sessions, need, limit),
			"raise it (ulimit -n) or lower --sessions")
	}
	return nil
}
