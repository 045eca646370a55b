package chat

import (
	"bytes"
	"encoding/json"
	"time"

	"librecord/net"
)

// Error is a protocol error answer (PROTOCOL.md 3.7). Re is the id of the
// request it answers, 0 when none could be read (it is then left out).
type Error struct {
	Re      int64
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Body returns the JSON error body.
func (e *Error) Body() []byte { return ErrorBody(e.Re, e.Code, e.Message) }

func badRequest(re int64, msg string) *Error {
	return &Error{Re: re, Code: net.CodeBadRequest, Message: msg}
}

type errorBody struct {
	Op      string `json:"op"`
	Re      int64  `json:"re,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorBody returns an error body; re 0 leaves "re" out, as for crypto
// errors and requests whose id could not be read.
func ErrorBody(re int64, code, message string) []byte {
	return encode(errorBody{Op: net.OpError, Re: re, Code: code, Message: message})
}

// encode writes v as JSON without HTML escaping (PROTOCOL.md 2.2) and
// without the encoder's trailing newline.
func encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("chat: encode answer: " + err.Error()) // only our own types get here
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// TimeFormat is how "at" is written: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

type connectedBody struct {
	Op               string   `json:"op"`
	Re               int64    `json:"re"`
	Status           string   `json:"status"`
	Pseudo           string   `json:"pseudo"`
	Salons           []string `json:"salons"`
	SessionTimeoutMS int64    `json:"session_timeout_ms"`
	PollMS           int64    `json:"poll_ms"`
}

type ackBody struct {
	Op       string `json:"op"`
	Re       int64  `json:"re"`
	Msg      int64  `json:"msg"`
	Portions int    `json:"portions"`
}

type salonsBody struct {
	Op     string          `json:"op"`
	Re     int64           `json:"re"`
	Salons []net.SalonInfo `json:"salons"`
}

type whoBody struct {
	Op      string   `json:"op"`
	Re      int64    `json:"re"`
	Salon   string   `json:"salon"`
	Pseudos []string `json:"pseudos"`
}

type simpleBody struct {
	Op     string `json:"op"`
	Re     int64  `json:"re"`
	Status string `json:"status,omitempty"`
}

// ResumedBody is the answer to a successful resume.
func ResumedBody(re int64) []byte {
	return encode(simpleBody{Op: net.OpResumed, Re: re, Status: net.StatusConnected})
}
