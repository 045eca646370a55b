package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"librecord/db"
	"librecord/net/chat"
	"librecord/net/server"
)

type fakeServer struct{ st server.Stats }

func (f fakeServer) Stats() server.Stats { return f.st }

type fakeStore struct{ err error }

func (f fakeStore) Salons(context.Context) ([]db.SalonInfo, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []db.SalonInfo{{Salon: db.Salon{Name: "general"}, Messages: 7}}, nil
}

func (f fakeStore) Healthy(context.Context) error { return f.err }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestMetrics(t *testing.T) {
	m := New("v1.2.3", "abc", "go1.x")
	m.Login(chat.LoginDisabled)
	m.Login(chat.LoginRateLimited)
	m.Committed(3, 2*time.Millisecond, nil)
	m.Committed(5, time.Millisecond, errors.New("disk full"))
	m.StorageError()
	m.Watch(fakeServer{server.Stats{Conns: 4, Pending: 1, Stats: chat.Stats{LoggedIn: 2, Parked: 3}}}, fakeStore{})
	code, body := get(t, m.Handler(), "/metrics")
	for _, want := range []string{
		`librecord_logins_total{result="disabled"} 1`,
		`librecord_logins_total{result="rate_limited"} 1`,
		`librecord_logins_total{result="ok"} 0`,
		`librecord_commit_batch_messages_sum 3`,
		`librecord_commit_errors_total 1`,
		`librecord_storage_errors_total 1`,
		`librecord_connections_open 4`,
		`librecord_connections_pending 1`,
		`librecord_sessions_logged_in 2`,
		`librecord_fetches_parked 3`,
		`librecord_salon_messages{salon="general"} 7`,
		`librecord_build_info{goversion="go1.x",revision="abc",version="v1.2.3"} 1`,
		`librecord_go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if code, body := get(t, m.Handler(), "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
}

// A database that does not answer: /healthz says 503, and /metrics still
// serves the metrics that do not need it.
func TestMetricsStoreDown(t *testing.T) {
	m := New("v", "r", "g")
	m.Watch(fakeServer{}, fakeStore{err: errors.New("disk I/O error")})
	if code, _ := get(t, m.Handler(), "/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz: %d", code)
	}
	code, body := get(t, m.Handler(), "/metrics")
	if !strings.Contains(body, "librecord_connections_open 0") {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	if strings.Contains(body, "disk I/O error") && code == 200 && strings.Contains(body, "salon_messages{") {
		t.Fatal("a failed salon count exposed as a value")
	}
	// Before Watch (no store yet): not healthy.
	if code, _ := get(t, New("v", "r", "g").Handler(), "/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz before Watch: %d", code)
	}
}
