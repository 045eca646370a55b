package net

import (
	"errors"
	"io"
	"sync"

	"librecord/crypto"
)

// ErrChannelErased is returned by EnvelopeWriter.WriteSealed when the
// session's keys have been erased (the session ended).
var ErrChannelErased = errors.New("session keys erased")

// EnvelopeWriter writes envelopes as frames on one connection. It is safe
// for concurrent use: WriteSealed seals and writes under one lock, so the
// envelopes go out in the order of their seq and the peer never sees one
// as replayed. Every frame is one Write.
type EnvelopeWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// frameBufs are frame buffers shared by the writers: a server's writer
// lives only while its connection has answers queued, so a buffer of its
// own would be made for nearly every answer.
var frameBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxKeptFrame bounds the buffers frameBufs keeps: a large answer's goes.
const maxKeptFrame = 64 << 10

// NewEnvelopeWriter writes frames to w.
func NewEnvelopeWriter(w io.Writer) *EnvelopeWriter {
	return &EnvelopeWriter{w: w}
}

// WriteSealed seals body on ch and writes the envelope as one frame.
func (ew *EnvelopeWriter) WriteSealed(ch *crypto.Channel, body []byte) error {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	env := ch.Seal(body)
	if env == nil {
		return ErrChannelErased
	}
	return ew.write(env)
}

// WriteEnvelope writes an envelope that needs no seq (a hello or a plain
// error) as one frame.
func (ew *EnvelopeWriter) WriteEnvelope(envelope []byte) error {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	if len(envelope) == 0 {
		return ErrEmptyPayload
	}
	return ew.write(envelope)
}

func (ew *EnvelopeWriter) write(env []byte) error {
	buf := frameBufs.Get().(*[]byte)
	*buf = AppendFrame((*buf)[:0], env)
	_, err := ew.w.Write(*buf)
	if cap(*buf) <= maxKeptFrame {
		frameBufs.Put(buf)
	}
	return err
}
