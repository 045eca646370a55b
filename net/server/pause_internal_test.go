package server

import (
	"testing"
	"time"
)

func TestLoginPauseGrows(t *testing.T) {
	const first = 100 * time.Millisecond
	for n, want := range map[int]time.Duration{
		0: 0, 1: first, 2: 2 * first, 3: 4 * first, 4: 8 * first, 5: 16 * first, 6: 16 * first, 1000: 16 * first,
	} {
		if got := loginPause(first, n); got != want {
			t.Errorf("pause after refusal %d: %v, want %v", n, got, want)
		}
	}
	if got := loginPause(0, 3); got != 0 {
		t.Errorf("pause with --login-pause 0: %v", got)
	}
}
