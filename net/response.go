package net

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
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
	return &Error{Re: re, Code: CodeBadRequest, Message: msg}
}

// ErrorBody returns an error body; re 0 leaves "re" out, as for crypto
// errors and requests whose id could not be read.
func ErrorBody(re int64, code, message string) []byte {
	return (&Response{Op: OpError, Re: re, Code: code, Message: message}).Encode()
}

// Encode writes v as a body: JSON without HTML escaping (PROTOCOL.md
// 2.2), so that '<', '>' and '&' take one byte, and without the
// encoder's trailing newline. v must be one of this package's bodies or
// a value made of strings, numbers, booleans, slices and structs of them.
func Encode(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("net: encode body: " + err.Error()) // only plain data gets here
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// TimeFormat is how a message's "at" is written: RFC 3339, UTC,
// milliseconds (Go time layout).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Response is one answer body (PROTOCOL.md section 3), as the server
// writes it (Encode) and the client reads it (ParseResponse). Op says
// which fields belong to it; the others are zero.
type Response struct {
	Op string
	Re int64 // the request's id; 0 for none (an error without re)

	Status string // connected, resumed
	Pseudo string // connected
	// Salons are the names of a connected answer.
	Salons           []string
	SessionTimeoutMS int64 // connected
	PollMS           int64 // connected

	Msg      int64 // ack
	Portions int   // ack

	Salon    string    // messages, who
	More     bool      // messages
	Messages []Message // messages, oldest first

	// SalonList is the list of a salons answer (its "salons" field).
	SalonList []SalonInfo
	Pseudos   []string // who
	Password  string   // passwd: the new password
	Code      string   // error
	Message   string   // error
}

// Encode writes the answer as its body: op, re and the fields of its op
// in a fixed order, lists never null, without HTML escaping.
func (r *Response) Encode() []byte {
	nonNil := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	var v any
	switch r.Op {
	case OpConnected:
		v = struct {
			Op               string   `json:"op"`
			Re               int64    `json:"re"`
			Status           string   `json:"status"`
			Pseudo           string   `json:"pseudo"`
			Salons           []string `json:"salons"`
			SessionTimeoutMS int64    `json:"session_timeout_ms"`
			PollMS           int64    `json:"poll_ms"`
		}{r.Op, r.Re, r.Status, r.Pseudo, nonNil(r.Salons), r.SessionTimeoutMS, r.PollMS}
	case OpAck:
		v = struct {
			Op       string `json:"op"`
			Re       int64  `json:"re"`
			Msg      int64  `json:"msg"`
			Portions int    `json:"portions"`
		}{r.Op, r.Re, r.Msg, r.Portions}
	case OpMessages:
		items := make([][]byte, len(r.Messages))
		for i, m := range r.Messages {
			items[i] = Encode(m)
		}
		return AppendMessages(nil, r.Re, r.Salon, r.More, items)
	case OpSalons:
		list := r.SalonList
		if list == nil {
			list = []SalonInfo{}
		}
		v = struct {
			Op     string      `json:"op"`
			Re     int64       `json:"re"`
			Salons []SalonInfo `json:"salons"`
		}{r.Op, r.Re, list}
	case OpWho:
		v = struct {
			Op      string   `json:"op"`
			Re      int64    `json:"re"`
			Salon   string   `json:"salon"`
			Pseudos []string `json:"pseudos"`
		}{r.Op, r.Re, r.Salon, nonNil(r.Pseudos)}
	case OpPasswd:
		v = struct {
			Op       string `json:"op"`
			Re       int64  `json:"re"`
			Password string `json:"password"`
		}{r.Op, r.Re, r.Password}
	case OpError:
		v = struct {
			Op      string `json:"op"`
			Re      int64  `json:"re,omitempty"`
			Code    string `json:"code"`
			Message string `json:"message"`
		}{r.Op, r.Re, r.Code, r.Message}
	default: // resumed (with its status), bye
		v = struct {
			Op     string `json:"op"`
			Re     int64  `json:"re"`
			Status string `json:"status,omitempty"`
		}{r.Op, r.Re, r.Status}
	}
	return Encode(v)
}

// A messages answer is its head, more, mid, the items joined by commas,
// and tail; AppendMessages writes it from items already encoded, so that
// the server can measure and trim them to one frame (MessagesOverhead).
const messagesMid, messagesTail = `,"messages":[`, `]}`

func messagesHead(re int64, salon string) string {
	return `{"op":"messages","re":` + strconv.FormatInt(re, 10) + `,"salon":` + string(Encode(salon)) + `,"more":`
}

// MessagesOverhead is the size of a messages answer to re in salon
// besides its items and the commas between them (more counted as
// "false", its longer spelling).
func MessagesOverhead(re int64, salon string) int {
	return len(messagesHead(re, salon)) + len("false") + len(messagesMid) + len(messagesTail)
}

// AppendMessages appends to b the messages answer to re in salon, whose
// items are Messages each written by Encode, oldest first.
func AppendMessages(b []byte, re int64, salon string, more bool, items [][]byte) []byte {
	size := MessagesOverhead(re, salon) + len(items)
	for _, it := range items {
		size += len(it)
	}
	b = slices.Grow(b, size)
	b = append(b, messagesHead(re, salon)...)
	b = strconv.AppendBool(b, more)
	b = append(b, messagesMid...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, messagesTail...)
}

// ErrMalformedResponse is returned by ParseResponse for a body that is
// not a JSON object with a string "op".
var ErrMalformedResponse = errors.New("malformed answer body")

// ParseResponse reads an answer body. A body that is not a JSON object
// with a non-empty string "op" is ErrMalformedResponse and a nil
// Response. A field of the wrong type (a "salons" that is neither the
// names of a connected answer nor the list of a salons answer, a string
// "msg") returns the Response read so far, with Op and Re, and an error:
// the answer breaks the protocol. ParseResponse checks types only; names,
// texts and timings are the reader's to check.
func ParseResponse(body []byte) (*Response, error) {
	var w struct {
		Op               string          `json:"op"`
		Re               *int64          `json:"re"`
		Status           string          `json:"status"`
		Pseudo           string          `json:"pseudo"`
		Salons           json.RawMessage `json:"salons"`
		SessionTimeoutMS int64           `json:"session_timeout_ms"`
		PollMS           int64           `json:"poll_ms"`
		Msg              int64           `json:"msg"`
		Portions         int             `json:"portions"`
		Salon            string          `json:"salon"`
		More             bool            `json:"more"`
		Messages         []Message       `json:"messages"`
		Pseudos          []string        `json:"pseudos"`
		Password         string          `json:"password"`
		Code             string          `json:"code"`
		Message          string          `json:"message"`
	}
	err := json.Unmarshal(body, &w)
	var typeErr *json.UnmarshalTypeError
	if (err != nil && !errors.As(err, &typeErr)) || w.Op == "" {
		return nil, ErrMalformedResponse
	}
	r := &Response{Op: w.Op, Status: w.Status, Pseudo: w.Pseudo,
		SessionTimeoutMS: w.SessionTimeoutMS, PollMS: w.PollMS, Msg: w.Msg, Portions: w.Portions,
		Salon: w.Salon, More: w.More, Messages: w.Messages, Pseudos: w.Pseudos,
		Password: w.Password, Code: w.Code, Message: w.Message}
	if w.Re != nil {
		r.Re = *w.Re
	}
	if err != nil {
		return r, errors.New("an answer field has the wrong type")
	}
	if len(w.Salons) > 0 && !bytes.Equal(w.Salons, []byte("null")) {
		switch r.Op {
		case OpConnected:
			err = json.Unmarshal(w.Salons, &r.Salons)
		case OpSalons:
			err = json.Unmarshal(w.Salons, &r.SalonList)
		}
		if err != nil {
			return r, errors.New(`"salons" is not a list of the answer's kind`)
		}
	}
	return r, nil
}
