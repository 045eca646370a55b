package net

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Framing limits of PROTOCOL.md section 1.
const (
	PortionSize        = 256
	MaxLineBytes       = 300
	DefaultMaxPortions = 1024
)

// portionBytes is how many payload bytes one full portion carries: 256
// base64 characters are exactly 64 groups of 4, so every full portion
// decodes on its own into 192 bytes.
const portionBytes = PortionSize / 4 * 3

// endLine is the line that ends a frame.
const endLine = "(ENDMESS)"

// b64 is strict: a last portion whose unused low bits are not zero is
// refused, so every payload has exactly one spelling on the wire.
var b64 = base64.RawURLEncoding.Strict()

// FrameError says what made a frame broken. Its Error text names the defect
// (e.g. "missing portion 3") and is sent to the peer as is. Fatal is set
// when the connection must be closed after the error (a line over 300
// bytes).
type FrameError struct {
	Msg   string
	Fatal bool
}

func (e *FrameError) Error() string { return e.Msg }

// ErrEmptyPayload is returned by WriteFrame for an empty payload: a frame
// has at least one portion, and every envelope at least one byte.
var ErrEmptyPayload = errors.New("frame payload is empty")

// EncodedPortions returns how many portions a payload of n bytes takes.
func EncodedPortions(n int) int {
	chars := base64.RawURLEncoding.EncodedLen(n)
	return (chars + PortionSize - 1) / PortionSize
}

// MaxPayload returns the largest payload that fits in maxPortions portions.
func MaxPayload(maxPortions int) int {
	if maxPortions <= 0 {
		return 0
	}
	return maxPortions * portionBytes
}

// FrameLen returns the exact number of bytes AppendFrame produces for a
// payload of n bytes.
func FrameLen(n int) int {
	total := len(endLine) + 1
	chars := base64.RawURLEncoding.EncodedLen(n)
	for i := 1; chars > 0; i++ {
		c := min(chars, PortionSize)
		digits := len(appendDecimal(make([]byte, 0, 20), i))
		// MESS<i>//<c chars>\\MESS<i>\n
		total += 4 + digits + 2 + c + 2 + 4 + digits + 1
		chars -= c
	}
	return total
}

// AppendFrame appends the frame for payload (portions and "(ENDMESS)\n")
// to dst. It panics on an empty payload, which no envelope is; WriteFrame
// returns ErrEmptyPayload instead.
func AppendFrame(dst, payload []byte) []byte {
	if len(payload) == 0 {
		panic("net: AppendFrame of an empty payload")
	}
	if need := FrameLen(len(payload)); cap(dst)-len(dst) < need {
		grown := make([]byte, len(dst), len(dst)+need)
		copy(grown, dst)
		dst = grown
	}
	for i := 1; len(payload) > 0; i++ {
		chunk := payload[:min(len(payload), portionBytes)]
		payload = payload[len(chunk):]
		dst = append(dst, "MESS"...)
		dst = appendDecimal(dst, i)
		dst = append(dst, "//"...)
		dst = b64.AppendEncode(dst, chunk)
		dst = append(dst, `\\MESS`...)
		dst = appendDecimal(dst, i)
		dst = append(dst, '\n')
	}
	return append(dst, endLine+"\n"...)
}

// appendDecimal appends n >= 1 in decimal without allocating.
func appendDecimal(dst []byte, n int) []byte {
	var buf [20]byte
	i := len(buf)
	for ; n > 0; n /= 10 {
		i--
		buf[i] = byte('0' + n%10)
	}
	return append(dst, buf[i:]...)
}

// WriteFrame writes the frame for payload with a single Write, so frames
// written by several goroutines to one connection never interleave (as
// long as the Writer itself does not split writes).
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) == 0 {
		return ErrEmptyPayload
	}
	_, err := w.Write(AppendFrame(nil, payload))
	return err
}

// base64url alphabet membership.
var isB64URL = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// FrameReader reads frames from a stream, checking every rule of section 1.
// It never holds more than one frame's worth of data: one line of at most
// 302 bytes and the decoded payload, at most MaxPayload(maxPortions) bytes.
// Its buffers are reused from frame to frame.
//
// A FrameReader is not safe for concurrent use. Next may be called again
// after an I/O error such as a read deadline: it resumes where it stopped.
type FrameReader struct {
	r           *bufio.Reader
	maxPortions int

	line    []byte // the line being read, kept across I/O errors
	payload []byte // decoded payload of the frame being read

	next      int  // number of the next portion expected (1 = none yet)
	lastShort int  // number of the previous portion if it was short, else 0
	skipping  bool // discarding the rest of a broken frame
	fatal     *FrameError
}

// NewFrameReader reads frames of at most maxPortions portions from r.
// A maxPortions of 0 or less means DefaultMaxPortions.
func NewFrameReader(r *bufio.Reader, maxPortions int) *FrameReader {
	if maxPortions <= 0 {
		maxPortions = DefaultMaxPortions
	}
	return &FrameReader{
		r:           r,
		maxPortions: maxPortions,
		line:        make([]byte, 0, MaxLineBytes+2),
		next:        1,
	}
}

// Next returns the next frame's decoded payload and its portion count.
// A broken frame returns a *FrameError as soon as the defective line is
// read; the following call first discards up to the (ENDMESS) ending the
// broken frame. I/O errors (io.EOF included) are returned as they are. The
// returned payload is valid until the next call.
//
// A Fatal FrameError (a line over MaxLineBytes) is sticky: every later call
// returns it again, since the connection must be closed.
func (fr *FrameReader) Next() (payload []byte, portions int, err error) {
	if fr.fatal != nil {
		return nil, 0, fr.fatal
	}
	for {
		line, err := fr.readLine()
		if err != nil {
			return nil, 0, err
		}
		if len(line) == 0 {
			continue
		}
		if fr.skipping {
			if string(line) == endLine {
				fr.skipping = false
			}
			continue
		}
		if string(line) == endLine {
			if fr.next == 1 {
				return nil, 0, &FrameError{Msg: "(ENDMESS) with no portion before it"}
			}
			n := fr.next - 1
			fr.reset()
			return fr.payload, n, nil
		}
		if ferr := fr.portion(line); ferr != nil {
			fr.reset()
			fr.skipping = true
			return nil, 0, ferr
		}
	}
}

// reset forgets the frame in progress, keeping the buffers.
func (fr *FrameReader) reset() {
	fr.next = 1
	fr.lastShort = 0
	// The payload slice is handed to the caller on success; it is only
	// truncated when the next frame starts (see portion).
}

// readLine returns the next line without its line end ("\n" or "\r\n"). A
// line longer than MaxLineBytes is a fatal FrameError, detected without
// holding more than MaxLineBytes+2 bytes.
func (fr *FrameReader) readLine() ([]byte, error) {
	for {
		chunk, err := fr.r.ReadSlice('\n')
		if room := MaxLineBytes + 2 - len(fr.line); len(chunk) > room {
			// Longer than 300 bytes + "\r\n" whatever its end turns out to be.
			return nil, fr.tooLong()
		}
		fr.line = append(fr.line, chunk...)
		switch {
		case err == nil:
			line := fr.line[:len(fr.line)-1]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			fr.line = fr.line[:0]
			if len(line) > MaxLineBytes {
				return nil, fr.tooLong()
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			// Keep the partial line: a caller may retry after a deadline.
			// At EOF the partial line is dropped with the connection.
			return nil, err
		}
	}
}

func (fr *FrameReader) tooLong() error {
	fr.line = fr.line[:0]
	fr.fatal = &FrameError{Msg: "line longer than " + strconv.Itoa(MaxLineBytes) + " bytes", Fatal: true}
	return fr.fatal
}

func frameErr(format string, n int) *FrameError {
	return &FrameError{Msg: fmt.Sprintf(format, n)}
}

// portion checks one line that is not (ENDMESS) and, when it is the
// expected portion, decodes it into the payload.
func (fr *FrameReader) portion(line []byte) *FrameError {
	// Opening tag: MESS<digits>//
	if len(line) < 4 || string(line[:4]) != "MESS" {
		return &FrameError{Msg: "line is neither a portion nor (ENDMESS)"}
	}
	i := 4
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	digits := line[4:i]
	if len(digits) == 0 || len(line) < i+2 || line[i] != '/' || line[i+1] != '/' {
		return &FrameError{Msg: "line is neither a portion nor (ENDMESS)"}
	}
	if len(digits) > 1 && digits[0] == '0' {
		return &FrameError{Msg: "portion number with leading zero"}
	}
	n := parseNumber(digits)
	switch {
	case n == fr.next && n > fr.maxPortions:
		return &FrameError{Msg: "frame has more than " + strconv.Itoa(fr.maxPortions) + " portions"}
	case n == 0:
		return frameErr("expected portion %d, got 0", fr.next)
	case n < fr.next:
		return frameErr("portion %d repeated", n)
	case n > fr.next:
		return frameErr("missing portion %d", fr.next)
	}
	// Closing tag: \\MESS<same digits>, textually identical to the opening.
	rest := line[i+2:]
	j := bytes.LastIndex(rest, []byte(`\\MESS`))
	if j < 0 {
		return frameErr("portion %d has no closing tag", n)
	}
	if string(rest[j+6:]) != string(digits) {
		return frameErr("closing tag of portion %d does not match", n)
	}
	text := rest[:j]
	if fr.lastShort != 0 {
		return frameErr("portion %d is shorter than 256 characters but is not the last", fr.lastShort)
	}
	switch {
	case len(text) == 0:
		return frameErr("portion %d is empty", n)
	case len(text) > PortionSize:
		return frameErr("portion %d is longer than 256 characters", n)
	}
	for _, c := range text {
		if !isB64URL[c] {
			return frameErr("character outside base64url in portion %d", n)
		}
	}
	if n == 1 {
		fr.payload = fr.payload[:0]
	}
	// A short portion can only be the last, so it must decode on its own:
	// a length of 1 mod 4 or non-zero unused bits is a defect visible now.
	var err error
	fr.payload, err = b64.AppendDecode(fr.payload, text)
	if err != nil {
		return frameErr("portion %d is not valid base64url", n)
	}
	if len(text) < PortionSize {
		fr.lastShort = n
	}
	fr.next = n + 1
	return nil
}

// parseNumber parses decimal digits, saturating at a value larger than any
// portion limit.
func parseNumber(digits []byte) int {
	n := 0
	for _, d := range digits {
		n = n*10 + int(d-'0')
		if n > 1<<30 {
			return 1 << 30
		}
	}
	return n
}
