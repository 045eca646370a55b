package net

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Request is one request body (PROTOCOL.md section 3), as the client
// writes it (Encode) and the server reads it (ParseRequest). Fields that
// do not belong to Op are zero.
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

// ParseRequest parses a request body strictly: a JSON object in valid UTF-8,
// a positive integer "id", a known string "op" and the op's required fields
// with their exact types; unknown fields are ignored. It checks types and
// presence only: ranges and content (text, cid, limit, salon names) are
// checked by the server's chat rules, so that the order of checks stays
// the protocol's (CheckText, ValidCid, ValidName).
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
	var f fieldReader
	var ok bool
	if f.n, ok = scanFlat(body, &f.flat); !ok {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			return nil, badRequest(0, "body is not a JSON object")
		}
		f.n, f.fields = 0, fields
	}
	rawID, ok := f.get("id")
	if !ok {
		return nil, badRequest(0, `missing "id"`)
	}
	id, ok := positiveInt(rawID)
	if !ok {
		return nil, badRequest(0, `"id" must be a positive integer`)
	}
	r := &Request{ID: id}
	f.id = id
	if r.Op, ok = f.str("op", true); !ok {
		return nil, f.err
	}
	switch r.Op {
	case OpLogin, OpPasswd:
		r.Password, ok = f.str("password", true)
	case OpSend:
		var ok1, ok2 bool
		r.Salon, ok = f.str("salon", true)
		r.Text, ok1 = f.str("text", true)
		r.Cid, ok2 = f.str("cid", true)
		ok = ok && ok1 && ok2
	case OpFetch:
		ok = f.fetch(r)
	case OpWho:
		r.Salon, ok = f.str("salon", true)
	case OpSalons, OpBye, OpResume:
		ok = true
	default:
		return nil, badRequest(id, "unknown op "+strconv.Quote(r.Op))
	}
	if !ok {
		return nil, f.err
	}
	return r, nil
}

// fieldReader reads typed fields and keeps the first error. The fields
// are flat (scanFlat) or, when the body was decoded generically, fields.
type fieldReader struct {
	flat   [maxFlatFields]field
	n      int // of flat
	fields map[string]json.RawMessage
	id     int64
	err    *Error
}

// get returns the raw value of the field name.
func (f *fieldReader) get(name string) ([]byte, bool) {
	if f.fields != nil {
		raw, ok := f.fields[name]
		return raw, ok
	}
	for _, fl := range f.flat[:f.n] {
		if string(fl.name) == name {
			return fl.raw, true
		}
	}
	return nil, false
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
	raw, ok := f.get(name)
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
	s, ok := unquote(raw)
	if !ok {
		return "", f.fail(strconv.Quote(name) + " must be a string")
	}
	return s, true
}

// integer reads an optional integer field; null counts as absent.
func (f *fieldReader) integer(name string) (v int64, present, ok bool) {
	raw, found := f.get(name)
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

func isNull(raw []byte) bool { return string(raw) == "null" }

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

// Encode writes the request as its body: op, id and the fields of its op,
// in a fixed order, without HTML escaping. A fetch carries limit when it
// is not 0, before and after when present, wait_ms with after when not 0.
func (r *Request) Encode() []byte {
	var v any
	switch r.Op {
	case OpLogin, OpPasswd:
		v = struct {
			Op       string `json:"op"`
			ID       int64  `json:"id"`
			Password string `json:"password"`
		}{r.Op, r.ID, r.Password}
	case OpSend:
		v = struct {
			Op    string `json:"op"`
			ID    int64  `json:"id"`
			Salon string `json:"salon"`
			Text  string `json:"text"`
			Cid   string `json:"cid"`
		}{r.Op, r.ID, r.Salon, r.Text, r.Cid}
	case OpFetch:
		f := struct {
			Op     string `json:"op"`
			ID     int64  `json:"id"`
			Salon  string `json:"salon"`
			Limit  int    `json:"limit,omitempty"`
			Before *int64 `json:"before,omitempty"`
			After  *int64 `json:"after,omitempty"`
			WaitMS int    `json:"wait_ms,omitempty"`
		}{Op: r.Op, ID: r.ID, Salon: r.Salon, Limit: r.Limit}
		if r.HasBefore {
			f.Before = &r.Before
		}
		if r.HasAfter {
			f.After, f.WaitMS = &r.After, r.WaitMS
		}
		v = f
	case OpWho:
		v = struct {
			Op    string `json:"op"`
			ID    int64  `json:"id"`
			Salon string `json:"salon"`
		}{r.Op, r.ID, r.Salon}
	default: // salons, bye, resume
		v = struct {
			Op string `json:"op"`
			ID int64  `json:"id"`
		}{r.Op, r.ID}
	}
	return Encode(v)
}
