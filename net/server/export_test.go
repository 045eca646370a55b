package server

// QueueBytes is queueBytes, for tests.
const QueueBytes = queueBytes

// Owed returns the answer bytes queued on every open connection.
func (s *Server) Owed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		c.qmu.Lock()
		n += c.queued
		c.qmu.Unlock()
	}
	return n
}
