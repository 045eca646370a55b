package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"librecord/commands"
)

var update = flag.Bool("update", false, "rewrite testdata/usage/*.golden from what librecord prints")

// TestMain lets the tests run main itself in a child process (the test
// binary re-executed with LIBRECORD_TEST_MAIN=1): the exit code and stderr
// they check are main's own.
func TestMain(m *testing.M) {
	if os.Getenv("LIBRECORD_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// result is what one run of librecord left: its exit code and output.
type result struct {
	code           int
	stdout, stderr string
}

// runMain runs main with args in dir, with no LIBRECORD_* variables but
// those the test gives, and stdin empty.
func runMain(t *testing.T, dir string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LIBRECORD_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LIBRECORD_TEST_MAIN=1", "HOME="+dir, "LIBRECORD_CONFIG_DIR="+filepath.Join(dir, "config"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("librecord %s: %v", strings.Join(args, " "), err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// usageCase is a command line librecord must refuse as a usage error of
// the command named by path ("" for librecord itself).
type usageCase struct {
	path string
	args []string
}

// extraUsageCases are the usage errors the walk of the command tree cannot
// derive, keyed by command path.
var extraUsageCases = map[string][][]string{
	"":               {{"help"}, {"user", "list", "--db"}, {"user", "--db"}, {"serve", "--passphrase-file"}}, // a global flag with no value, after a command
	"user":           {{"user", "help", "bogus"}},
	"export":         {{"export"}, {"export", "--format", "json"}}, // no --salon
	"chat":           {{"chat", "--poll", "soon"}},
	"message remove": {{"message", "remove", "7"}, {"message", "remove", "--salon"}, {"message", "remove", "7", "8", "--salon"}}, // no --salon; no value
	"salon retain":   {{"salon", "retain", "general", "soon"}},
	"serve":          {{"serve", "--max-conns", "many"}},
}

// usageCases walks the app's command tree: for each command an unknown
// flag; for a command with subcommands an unknown subcommand; for one
// without, arguments one short of and one beyond what its ArgsUsage says,
// and an unknown flag after its arguments. A command added to the app is
// covered without touching this test (run it with -update and read the
// new golden file).
func usageCases(app *cli.App) map[string][]usageCase {
	cases := map[string][]usageCase{}
	add := func(path string, args ...string) {
		cases[path] = append(cases[path], usageCase{path, args})
	}
	add("", "bogus")
	add("", "--bogus")
	var walk func(parent []string, cmds []*cli.Command)
	walk = func(parent []string, cmds []*cli.Command) {
		for _, c := range cmds {
			words := append(slices.Clone(parent), c.Name)
			path := strings.Join(words, " ")
			add(path, append(slices.Clone(words), "--bogus")...)
			if len(c.Subcommands) > 0 {
				add(path, append(slices.Clone(words), "bogus")...)
				walk(words, c.Subcommands)
				continue
			}
			min, max := 0, 0
			for _, w := range strings.Fields(c.ArgsUsage) {
				if !strings.HasPrefix(w, "[") {
					min++
				}
				max++
				if strings.HasSuffix(strings.TrimSuffix(w, "]"), "...") {
					max = -1
					break
				}
			}
			if min > 0 {
				add(path, append(slices.Clone(words), placeholders(min-1)...)...)
				add(path, append(append(slices.Clone(words), placeholders(min)...), "--bogus")...)
			}
			// A value flag typed last without its value, after the
			// arguments (commands/app_test.go checks every flag).
			if f := firstValueFlag(c.Flags); f != "" {
				add(path, append(append(slices.Clone(words), placeholders(min)...), f)...)
			}
			if max >= 0 {
				add(path, append(slices.Clone(words), placeholders(max+1)...)...)
			}
		}
	}
	walk(nil, app.Commands)
	for path, extra := range extraUsageCases {
		if _, ok := cases[path]; !ok {
			panic(fmt.Sprintf("extraUsageCases: no command %q", path))
		}
		for _, args := range extra {
			add(path, args...)
		}
	}
	return cases
}

// firstValueFlag is the first flag of flags that takes a value, as
// typed ("--salon"); "" if none does.
func firstValueFlag(flags []cli.Flag) string {
	for _, f := range flags {
		if _, isBool := f.(*cli.BoolFlag); !isBool {
			return "--" + f.Names()[0]
		}
	}
	return ""
}

func placeholders(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("arg%d", i+1)
	}
	return out
}

// TestUsageErrors runs librecord (main itself, in a child process) on
// each usage error of each command and compares exit code and stderr with
// testdata/usage/COMMAND.golden. Whatever the golden files say, every case
// must exit 2, print nothing on stdout, touch no file, and hint at the
// help of the command that was typed (`librecord user add --help`, never
// `librecord add --help`).
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := usageCases(commands.NewApp())
	goldenDir := filepath.Join("testdata", "usage")
	for path, cs := range cases {
		name := goldenName(path)
		t.Run(name, func(t *testing.T) {
			var got strings.Builder
			got.WriteString("# go test -run TestUsageErrors -update . rewrites this file: read the diff.\n")
			for _, c := range cs {
				r := runMain(t, dir, c.args...)
				line := "librecord " + strings.Join(c.args, " ")
				fmt.Fprintf(&got, "\n$ %s\nexit status %d\n%s", line, r.code, r.stderr)
				if r.code != 2 {
					t.Errorf("%s: exit status %d, want 2\n%s", line, r.code, r.stderr)
				}
				if r.stdout != "" {
					t.Errorf("%s: printed on stdout:\n%s", line, r.stdout)
				}
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				hint := fmt.Sprintf("librecord: hint: see `%s --help`", strings.TrimSpace("librecord "+c.path))
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "librecord: error: ") || lines[1] != hint {
					t.Errorf("%s: stderr\n%s\nwant one error line and %q", line, r.stderr, hint)
				}
			}
			file := filepath.Join(goldenDir, name+".golden")
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(got.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run TestUsageErrors -update . to create it)", err)
			}
			if got.String() != string(want) {
				t.Errorf("%s differs from librecord's output; got:\n%s", file, got.String())
			}
		})
	}
	t.Run("NoStaleGoldenFiles", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
		names := map[string]bool{}
		for path := range cases {
			names[goldenName(path)+".golden"] = true
		}
		for _, f := range files {
			if !names[filepath.Base(f)] {
				t.Errorf("%s: no such command any more; remove the file", f)
			}
		}
	})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("usage errors left files behind in %s: %v", dir, entries)
	}
}

// goldenName is the golden file of a command path: "user_add", or
// "librecord" for librecord itself.
func goldenName(path string) string {
	if path == "" {
		return "librecord"
	}
	return strings.ReplaceAll(path, " ", "_")
}

// TestFailureExitCode: a failure that is not a usage error (here: no
// database) exits 1 in the same format, with the hint chosen for it.
func TestFailureExitCode(t *testing.T) {
	dir := t.TempDir()
	r := runMain(t, dir, "user", "list", "--db", "missing.db")
	if r.code != 1 || r.stdout != "" {
		t.Fatalf("exit status %d, stdout %q, want 1 and nothing", r.code, r.stdout)
	}
	want := "librecord: error: no database at missing.db\n" +
		"librecord: hint: run `librecord init` to create it, or point --db (or LIBRECORD_DB) at the right file\n"
	if r.stderr != want {
		t.Fatalf("stderr\n%s\nwant\n%s", r.stderr, want)
	}
}
