package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestUnthrottleFlag(t *testing.T) {
	help := `OPTIONS:
   --listen ADDRESS          TCP ADDRESS to listen on (default: ":7447")
   --max-conns value         open connections at most (0: no limit) (default: 1000)
   --login-limit value       failed logins per address within --login-window before refusing (0: no limit) (default: 5)
   --login-window value      window of --login-limit (default: 1m0s)
   --send-rate value         sends per second per session (0: no limit) (default: 20)
   --max-sessions-per-user value  sessions of one user at once (0: off) (default: 8)
   --send-burst value        sends a session may make at once above --send-rate (default: 40)
`
	var got []string
	for line := range strings.Lines(help) {
		if m := unthrottleFlag.FindStringSubmatch(line); m != nil {
			got = append(got, m[1])
		}
	}
	want := []string{"max-conns", "login-limit", "send-rate", "max-sessions-per-user"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSelect(t *testing.T) {
	all, err := Select("all", Overrides{})
	if err != nil || len(all) != len(Shapes) {
		t.Fatalf("all: %v %v", all, err)
	}
	n, r := 7, 2.5
	got, err := Select("community", Overrides{Sessions: &n, Rate: &r})
	if err != nil || len(got) != 1 || got[0].Sessions != 7 || got[0].Senders != 5 || got[0].Rate != 2.5 {
		t.Fatalf("community: %+v %v", got, err)
	}
	three := 3
	if got, _ := Select("idle", Overrides{Sessions: &three}); got[0].Senders != 0 {
		t.Fatalf("idle with 3 sessions: %+v", got)
	}
	if got, _ := Select("send", Overrides{Sessions: &three}); got[0].Senders != 3 {
		t.Fatalf("send with 3 sessions keeps every session a sender: %+v", got)
	}
	small := minSize - 1
	for _, o := range []Overrides{{Sessions: new(int)}, {Senders: &n, Sessions: &three}, {Size: &small}} {
		if _, err := Select("community", o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := Select("nope", Overrides{}); err == nil {
		t.Error("unknown shape accepted")
	}
}

func TestText(t *testing.T) {
	r := &run{id: "0a1b2c3d", shape: Shape{Size: minSize}}
	sent := 1234567 * time.Microsecond
	text := r.text(99, sent)
	if len(text) != minSize {
		t.Fatalf("len %d, want %d: %q", len(text), minSize, text)
	}
	if got, ok := r.parse(text); !ok || got != sent {
		t.Fatalf("parse %q = %v %v", text, got, ok)
	}
	if _, ok := (&run{id: "ffffffff"}).parse(text); ok {
		t.Fatal("another run's message parsed")
	}
	r.shape.Size = 500
	if text := r.text(1<<62, 1<<62); len(text) != 500 {
		t.Fatalf("len %d", len(text))
	}
}

func TestFloor(t *testing.T) {
	us, err := Floor(200, 20*time.Millisecond)
	if err != nil || us <= 0 {
		t.Fatalf("floor %v %v", us, err)
	}
}

func TestReportOverTCP(t *testing.T) {
	r := &Report{Server: "child", FloorUS: 100}
	r.Add(Result{Shape: "community", Transport: "tcp", ServerCPUPerRequest: ptr(200.0)})
	r.Add(Result{Shape: "send", Transport: "tcp", ServerCPUPerRequest: ptr(50.0)})
	r.Add(Result{Shape: "community", Transport: "ws", ServerCPUPerRequest: ptr(220.0)})
	if got := r.Shapes[2].OverTCP; got == nil || *got != 1.1 {
		t.Fatalf("ws over tcp %v, want 1.1", got)
	}
	if r.Shapes[0].OverTCP != nil || r.Shapes[1].OverTCP != nil {
		t.Fatal("a tcp column has a ratio")
	}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"transport", "µs/request ÷ tcp's", "1.10", "--web"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
