package web_test

import (
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"librecord/net/web"
)

// needTool returns the path of a tool the browser-side tests need; without
// it they skip, except in CI (env CI set), where they fail.
func needTool(t *testing.T, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (CI is set: install it, see .ci/run)", names[0])
	}
	t.Skipf("%s not found; set CI to make this a failure", names[0])
	return ""
}

// TestJSUnit runs the page's own unit tests (jstest/) under node: the frame
// codec against net/testdata, the crypto module against crypto/testdata.
func TestJSUnit(t *testing.T) {
	node := needTool(t, "node", "nodejs")
	cmd := exec.Command(node, "--test", "jstest/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^# pass [1-9]`).Match(out) || !regexp.MustCompile(`(?m)^# fail 0$`).Match(out) {
		t.Fatalf("node --test ran nothing or failed:\n%s", out)
	}
}

// TestPageBudget: the page and its scripts stay under 150 KB uncompressed.
func TestPageBudget(t *testing.T) {
	total := 0
	fs.WalkDir(web.Static(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.IsDir() || strings.HasSuffix(path, "LICENSE") {
			return nil
		}
		b, err := fs.ReadFile(web.Static(), path)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
		return nil
	})
	if total == 0 || total > 150*1024 {
		t.Fatalf("page and scripts are %d bytes, budget 150 KB", total)
	}
	t.Logf("page and scripts: %d bytes", total)
}

// TestNoHTMLSinks: server text must only ever reach textContent.
func TestNoHTMLSinks(t *testing.T) {
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\("on`)
	fs.WalkDir(web.Static(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path, "vendor/") || !strings.HasSuffix(path, ".js") && !strings.HasSuffix(path, ".html") {
			return err
		}
		b, _ := fs.ReadFile(web.Static(), path)
		if m := sinks.Find(b); m != nil {
			t.Errorf("%s uses %s", path, m)
		}
		if strings.HasSuffix(path, ".html") && regexp.MustCompile(`<script>|style=|<style|\son[a-z]+=`).Match(b) {
			t.Errorf("%s has inline script or style (the CSP forbids it)", path)
		}
		return nil
	})
}

// TestJSClientLive runs the page's protocol client (client.js) under node
// against a real server over WebSocket: login, send, long-poll, resume,
// outbox, who, logout.
func TestJSClientLive(t *testing.T) {
	node := needTool(t, "node", "nodejs")
	s := startStack(t, nil)
	cmd := exec.Command(node, "--experimental-websocket", "--test", "jstest/live_client.mjs")
	cmd.Env = append(os.Environ(), "LIBRECORD_WS_URL="+wsURL(s.web), "LIBRECORD_PASSWORD="+alicePassword, "LIBRECORD_FP="+s.fp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^# pass 3$`).Match(out) {
		t.Fatalf("node ran fewer tests than expected:\n%s", out)
	}
}
