package server

import "librecord/net/chat"

// Stats is a snapshot of the server's connections and sessions, for
// metrics.
type Stats struct {
	Conns   int // open connections
	Pending int // connections not logged in yet, held ones (past a cap, undecided) included
	chat.Stats
}

// Stats counts the open connections and the hub's sessions. Call it at
// scrape time, not per request.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Conns: len(s.conns), Pending: s.pending}
	for _, src := range s.sources {
		st.Pending += src.held
	}
	s.mu.Unlock()
	st.Stats = s.hub.Stats()
	return st
}
