package chat

// Stats is a snapshot of the hub's sessions, for metrics.
type Stats struct {
	Sessions int // live sessions, logged in or not
	LoggedIn int // live logged-in sessions
	Parked   int // fetches parked (long-polls waiting for a message)
}

// Stats counts the live sessions, the logged-in ones and their parked
// fetches. It takes every session's lock in turn: call it at scrape
// time, not per request.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{Sessions: len(h.sessions)}
	for _, s := range h.sessions {
		s.mu.Lock()
		if s.loggedIn && !s.ended {
			st.LoggedIn++
		}
		st.Parked += s.parked
		s.mu.Unlock()
	}
	return st
}
