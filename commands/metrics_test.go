package commands

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	lnet "librecord/net"
	"librecord/net/client"
)

// scrape GETs url and returns the status and body.
func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// sample returns the value of the sample named series (name and labels,
// as exposed) in a Prometheus text exposition, or -1.
func sample(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

var metricsAddr = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// TestServeMetrics: serve --metrics exposes the promised metrics, each
// named librecord_..., with values that follow what clients did, and a
// /healthz that answers 200; without the flag nothing listens.
func TestServeMetrics(t *testing.T) {
	e := newInitEnv(t)
	e.mustRun("alice's password\n", false, "user", "add", "alice", "--salon", "general", "--password-stdin")
	addr, fp, logs := e.liveServe(t, "--metrics", "127.0.0.1:0")
	m := metricsAddr.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", logs.String())
	}
	base := "http://" + m[1]

	if _, err := loginAs(t, addr, fp, "nobody's password"); !client.IsCode(err, lnet.CodeAuth) {
		t.Fatalf("wrong password: %v", err)
	}
	alice := mustLogin(t, addr, fp, "alice's password")
	mustSend(t, alice, "general", "one")
	mustSend(t, alice, "general", "two")
	if msgs, err := alice.Fetch(tctx(t), client.FetchRequest{Salon: "general"}); err != nil || len(msgs.Messages) != 2 {
		t.Fatalf("fetch: %v %v", msgs, err)
	}

	status, body := scrape(t, base+"/metrics")
	if status != 200 {
		t.Fatalf("/metrics: %d\n%s", status, body)
	}
	for series, want := range map[string]float64{
		`librecord_logins_total{result="ok"}`:           1,
		`librecord_logins_total{result="failed"}`:       1,
		`librecord_logins_total{result="disabled"}`:     0,
		`librecord_logins_total{result="rate_limited"}`: 0,
		`librecord_sends_acked_total`:                   2,
		`librecord_deliveries_total`:                    2,
		`librecord_salon_messages{salon="general"}`:     2,
		`librecord_sessions_logged_in`:                  1,
		`librecord_fetches_parked`:                      0,
		`librecord_storage_errors_total`:                0,
		`librecord_commit_batch_messages_sum`:           2,
	} {
		if got := sample(body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, series := range []string{`librecord_connections_open`, `librecord_commit_seconds_count`, `librecord_fetch_read_seconds_count`} {
		if got := sample(body, series); got < 1 {
			t.Errorf("%s = %v, want at least 1", series, got)
		}
	}
	if !regexp.MustCompile(`(?m)^librecord_build_info\{goversion="go[^"]+",revision="[^"]*",version="[^"]+"\} 1$`).MatchString(body) {
		t.Errorf("no build info:\n%s", body)
	}
	for _, line := range strings.Split(body, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "librecord_") {
			t.Errorf("metric outside librecord_: %q", line)
		}
	}
	if status, body := scrape(t, base+"/healthz"); status != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", status, body)
	}
	if status, _ := scrape(t, base+"/nothing"); status != 404 {
		t.Fatalf("/nothing: %d", status)
	}
}

func TestServeMetricsAddressTaken(t *testing.T) {
	e := newInitEnv(t)
	_, _, err := e.run("", false, "serve", "--listen", "127.0.0.1:0", "--metrics", "256.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "metrics") || Hint(err) == "" {
		t.Fatalf("err = %v", err)
	}
}
