package chat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"librecord/net"
)

// Request is one parsed request body (PROTOCOL.md section 3). Fields that do
// not belong to Op are zero.
type Request struct {
	Op       string
	ID       int64
	Password string // login, passwd (the current password)
	Salon    string // send, fetch, who
	Text     string // send
	Cid      string // send
	Limit    int    // fetch; 0 when absent
	Before   int64  // fetch, when HasBefore
	After    int64  // fetch, when HasAfter
	WaitMS   int    // fetch; only read when HasAfter
	// HasBefore and HasAfter say which cursor the fetch carries.
	HasBefore, HasAfter bool
}

// MaxWaitMS is the longest long-poll a fetch may ask for (PROTOCOL.md 3.3).
const MaxWaitMS = 25000

// ParseRequest parses a request body strictly: a JSON object in valid UTF-8,
// a positive integer "id", a known string "op" and the op's required fields
// with their exact types; unknown fields are ignored. It checks types and
// presence only: ranges and content (text, cid, limit, salon names) are the
// Hub's, so that the order of checks stays the protocol's.
//
// The returned *Error has Re set when the id could be read.
func ParseRequest(body []byte) (*Request, *Error) {
	if !utf8.Valid(body) {
		return nil, badRequest(0, "body is not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, badRequest(0, "body is not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, badRequest(0, "body is not a JSON object")
	}
	rawID, ok := fields["id"]
	if !ok {
		return nil, badRequest(0, `missing "id"`)
	}
	id, ok := positiveInt(rawID)
	if !ok {
		return nil, badRequest(0, `"id" must be a positive integer`)
	}
	r := &Request{ID: id}
	f := fieldReader{fields: fields, id: id}
	if r.Op, ok = f.str("op", true); !ok {
		return nil, f.err
	}
	switch r.Op {
	case net.OpLogin, net.OpPasswd:
		r.Password, ok = f.str("password", true)
	case net.OpSend:
		var ok1, ok2 bool
		r.Salon, ok = f.str("salon", true)
		r.Text, ok1 = f.str("text", true)
		r.Cid, ok2 = f.str("cid", true)
		ok = ok && ok1 && ok2
	case net.OpFetch:
		ok = f.fetch(r)
	case net.OpWho:
		r.Salon, ok = f.str("salon", true)
	case net.OpSalons, net.OpBye, net.OpResume:
		ok = true
	default:
		return nil, badRequest(id, "unknown op "+strconv.Quote(r.Op))
	}
	if !ok {
		return nil, f.err
	}
	return r, nil
}

// fieldReader reads typed fields and keeps the first error.
type fieldReader struct {
	fields map[string]json.RawMessage
	id     int64
	err    *Error
}

func (f *fieldReader) fail(msg string) bool {
	if f.err == nil {
		f.err = badRequest(f.id, msg)
	}
	return false
}

// str reads a string field. A lone surrogate escape ("\ud800") is refused:
// encoding/json would silently turn it into U+FFFD.
func (f *fieldReader) str(name string, required bool) (string, bool) {
	raw, ok := f.fields[name]
	if !ok || isNull(raw) {
		if required {
			return "", f.fail("missing " + strconv.Quote(name))
		}
		return "", true
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", f.fail(strconv.Quote(name) + " must be a string")
	}
	if hasLoneSurrogate(raw) {
		return "", f.fail(strconv.Quote(name) + " holds a lone surrogate escape (invalid UTF-8)")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", f.fail(strconv.Quote(name) + " must be a string")
	}
	return s, true
}

// integer reads an optional integer field; null counts as absent.
func (f *fieldReader) integer(name string) (v int64, present, ok bool) {
	raw, found := f.fields[name]
	if !found || isNull(raw) {
		return 0, false, true
	}
	n, good := intLiteral(raw)
	if !good {
		return 0, true, f.fail(strconv.Quote(name) + " must be an integer")
	}
	return n, true, true
}

func (f *fieldReader) fetch(r *Request) bool {
	var ok bool
	if r.Salon, ok = f.str("salon", true); !ok {
		return false
	}
	limit, hasLimit, ok := f.integer("limit")
	if !ok {
		return false
	}
	if hasLimit {
		if limit < 1 || limit > 1<<30 {
			return f.fail(`"limit" out of range`)
		}
		r.Limit = int(limit)
	}
	if r.Before, r.HasBefore, ok = f.integer("before"); !ok {
		return false
	}
	if r.After, r.HasAfter, ok = f.integer("after"); !ok {
		return false
	}
	if r.HasBefore && r.HasAfter {
		return f.fail(`"before" and "after" cannot be used together`)
	}
	if (r.HasBefore && r.Before < 0) || (r.HasAfter && r.After < 0) {
		return f.fail("a cursor must be a message id (0 or more)")
	}
	if r.HasAfter { // wait_ms without after is ignored, not even checked
		wait, _, ok := f.integer("wait_ms")
		if !ok {
			return false
		}
		if wait < 0 || wait > MaxWaitMS {
			return f.fail(`"wait_ms" must be 0 to 25000`)
		}
		r.WaitMS = int(wait)
	}
	return true
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// intLiteral accepts a JSON integer literal (no fraction, no exponent)
// that fits an int64.
func intLiteral(raw []byte) (int64, bool) {
	digits := raw
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

func positiveInt(raw []byte) (int64, bool) {
	n, ok := intLiteral(raw)
	return n, ok && n > 0
}

// hasLoneSurrogate scans a raw JSON string literal for a \uD800-\uDFFF
// escape that is not part of a high-low pair.
func hasLoneSurrogate(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // skip the escaped character (it may be a backslash)
			continue
		}
		v, ok := hex4(raw, i+2)
		if !ok {
			return false // not valid JSON; the decoder will say so
		}
		switch {
		case v >= 0xDC00 && v <= 0xDFFF:
			return true
		case v >= 0xD800 && v <= 0xDBFF:
			if i+11 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				if lo, ok := hex4(raw, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					i += 11
					continue
				}
			}
			return true
		}
		i += 5
	}
	return false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var v rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// ValidName reports whether s is a pseudo or salon name as PROTOCOL.md
// section 4 defines them: 1 to 32 ASCII letters, digits, '-', '_' and '.'.
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validCid reports whether cid is 1 to 64 printable ASCII characters.
func validCid(cid string) bool {
	if len(cid) < 1 || len(cid) > 64 {
		return false
	}
	for i := 0; i < len(cid); i++ {
		if cid[i] < 0x21 || cid[i] > 0x7E {
			return false
		}
	}
	return true
}

// checkText applies PROTOCOL.md 3.2 to a decoded text: 1 to max bytes,
// valid UTF-8, no control character but newline and tab (C0, DEL and
// the C1 controls U+0080 to U+009F are refused).
func checkText(text string, max int) *Error {
	switch {
	case len(text) == 0:
		return &Error{Code: net.CodeBadRequest, Message: "empty text"}
	case len(text) > max:
		return &Error{Code: net.CodeTooLarge, Message: "text longer than " + strconv.Itoa(max) + " bytes"}
	case !utf8.ValidString(text):
		return &Error{Code: net.CodeBadRequest, Message: "text is not valid UTF-8"}
	}
	for _, r := range text {
		if IsControl(r) && r != '\n' && r != '\t' {
			return &Error{Code: net.CodeBadRequest, Message: "text holds a control character"}
		}
	}
	return nil
}

// IsControl reports whether r is a control character of PROTOCOL.md 3.2:
// C0 (U+0000 to U+001F), DEL (U+007F) or C1 (U+0080 to U+009F).
func IsControl(r rune) bool {
	return r < 0x20 || (r >= 0x7F && r <= 0x9F)
}
