package chat

import (
	"bytes"
	"errors"
	"log/slog"
	"time"

	"librecord/crypto"
	"librecord/db"
	"librecord/net"
)

// passwd changes the session's user's password (PROTOCOL.md 3.8). The
// current password is checked like a login (a wrong one is a failed login
// of the source, and a source over its budget is refused unchecked); the
// new one is generated here, as `librecord user add` does. The session
// keeps living on its new credential; the user's other sessions end at
// their next request. A retry of the last successful passwd's id gets the
// same answer, its password unchecked. Passwords are never logged.
func (h *Hub) passwd(s *Session, req *net.Request, reply Reply) {
	s.credMu.Lock() // one change at a time; the session's other checks wait
	defer s.credMu.Unlock()
	s.mu.Lock()
	if s.passwdAnswer != nil && s.passwdRe == req.ID {
		again := s.passwdAnswer
		s.mu.Unlock()
		reply.Send(bytes.Clone(again)) // the kept copy is erased with the keys
		return
	}
	cred, peer := s.cred, s.peer
	s.mu.Unlock()
	ok, err := h.store.Valid(h.ctx, cred)
	if !h.afterValid(s, ok, err, req.ID, reply) {
		return
	}
	allowed, clean := h.logins.begin(peer.Source, time.Now)
	if !allowed {
		h.quiet.emit(peer.Source, slog.LevelWarn, "password change refused: too many failures", "addr", peer.Addr, "source", peer.Source.String())
		reply.Send(net.ErrorBody(req.ID, net.CodeRateLimited, "too many failed logins from your address: wait a minute"))
		return
	}
	if !h.hashes.acquire(clean, h.ctx.Done()) {
		h.logins.end(peer.Source, false, time.Now())
		reply.Send(net.ErrorBody(req.ID, net.CodeUnavailable, "server shutting down, password unchanged: retry"))
		return
	}
	next := crypto.GeneratePassword()
	changed, err := h.store.ChangePassword(h.ctx, cred, req.Password, next)
	h.hashes.release()
	h.logins.end(peer.Source, errors.Is(err, db.ErrAuth), time.Now())
	switch {
	case errors.Is(err, db.ErrAuth):
		h.log.Info("password change refused: wrong password", "session", s.id, "pseudo", cred.Pseudo, "addr", peer.Addr)
		reply.Send(net.ErrorBody(req.ID, net.CodeAuth, "wrong password; your password is unchanged"))
		return
	case errors.Is(err, db.ErrPasswordInUse): // a 140-bit draw met another user's: never in practice
		reply.Send(net.ErrorBody(req.ID, net.CodeUnavailable, "password unchanged: retry"))
		return
	case err != nil:
		reply.Send(h.storeError(req.ID, err, "change password").Body())
		return
	}
	answer := (&net.Response{Op: net.OpPasswd, Re: req.ID, Password: next}).Encode()
	s.mu.Lock()
	s.cred = changed
	clear(s.passwdAnswer)
	s.passwdRe, s.passwdAnswer = req.ID, nil
	if !s.erased { // an ended session keeps no copy
		s.passwdAnswer = answer
	}
	s.mu.Unlock()
	h.log.Info("password changed", "session", s.id, "pseudo", cred.Pseudo)
	reply.Send(bytes.Clone(answer))
}
