package commands

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	e := newAdminEnv(t)
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, _, err := e.runRaw("", nil, false, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "librecord ") || !strings.HasPrefix(lines[1], "revision ") ||
			lines[2] != "built with "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Fatalf("%v printed %q", args, out)
		}
	}
	if _, _, err := e.runRaw("", nil, false, "version", "extra"); err == nil {
		t.Fatal("version with an argument accepted")
	}
}

// TestVersionOfBuiltBinary: a binary built from a checkout of this
// repository (as .ci/run builds it) names the commit it was built from.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	src := ".."
	if fi, err := os.Stat("../.git"); err == nil && !fi.IsDir() {
		// A git worktree (.git is a file): go build stamps nothing there,
		// so build from a plain clone of the same commit.
		src = filepath.Join(t.TempDir(), "clone")
		if out, err := exec.Command("git", "clone", "--quiet", "--no-checkout", "..", src).CombinedOutput(); err != nil {
			t.Skipf("git clone: %v\n%s", err, out)
		}
		co := exec.Command("git", "checkout", "--quiet", strings.TrimSpace(string(head)))
		co.Dir = src
		if out, err := co.CombinedOutput(); err != nil {
			t.Fatalf("git checkout: %v\n%s", err, out)
		}
	}
	bin := filepath.Join(t.TempDir(), "librecord")
	// -buildvcs=true: a machine's GOFLAGS may say false.
	build := exec.Command("go", "build", "-buildvcs=true", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "revision " + strings.TrimSpace(string(head)) + " ("
	if !strings.Contains(string(out), want) {
		t.Fatalf("--version printed %q, want a line starting %q", out, want)
	}
}
