package net

import (
	"bufio"
	"io"
)

// Framing limits of PROTOCOL.md section 1.
const (
	PortionSize        = 256
	MaxLineBytes       = 300
	DefaultMaxPortions = 1024
)

// FrameError says what made a frame broken. Its Error text names the defect
// (e.g. "missing portion 3") and is sent to the peer as is. Fatal is set
// when the connection must be closed after the error (a line over 300
// bytes).
type FrameError struct {
	Msg   string
	Fatal bool
}

func (e *FrameError) Error() string { return e.Msg }

// EncodedPortions returns how many portions a payload of n bytes takes.
func EncodedPortions(n int) int { panic("TODO") }

// MaxPayload returns the largest payload that fits in maxPortions portions.
func MaxPayload(maxPortions int) int { panic("TODO") }

// AppendFrame appends the frame for payload (portions and "(ENDMESS)\n")
// to dst.
func AppendFrame(dst, payload []byte) []byte { panic("TODO") }

// WriteFrame writes the frame for payload with a single Write.
func WriteFrame(w io.Writer, payload []byte) error { panic("TODO") }

// FrameReader reads frames from a stream, checking every rule of section 1.
// It never holds more than one frame's worth of data.
type FrameReader struct {
	// unexported
}

// NewFrameReader reads frames of at most maxPortions portions from r.
func NewFrameReader(r *bufio.Reader, maxPortions int) *FrameReader { panic("TODO") }

// Next returns the next frame's decoded payload and its portion count.
// A broken frame returns a *FrameError as soon as the defective line is
// read; the following call first discards up to the (ENDMESS) ending the
// broken frame. I/O errors (io.EOF included) are returned as they are. The
// returned payload is valid until the next call.
func (fr *FrameReader) Next() (payload []byte, portions int, err error) { panic("TODO") }
