package net

import "encoding/json"

// A request body is almost always a flat JSON object: a few keys, each a
// string or an integer. scanFlat reads such an object in one pass with no
// map and no reflection (the generic decoder took 4% of the server's CPU
// under load); everything else, and anything it is not sure of, goes to
// encoding/json (ParseRequest). What it accepts is valid JSON and it
// returns exactly what json.Unmarshal into map[string]json.RawMessage
// would: each key once, with the raw bytes of its value
// (FuzzScanFlatSameAsJSON).

// field is one member of a flat object: its key and its value's raw JSON.
type field struct {
	name []byte
	raw  []byte
}

// maxFlatFields bounds the members scanFlat reads; a larger object goes to
// the generic decoder.
const maxFlatFields = 16

// scanFlat reads body as a JSON object whose keys hold no escape and whose
// values are strings, numbers, true, false or null, each key once, into
// the first n of fields. ok is false for anything else: the caller then
// decodes the body generically.
func scanFlat(body []byte, fields *[maxFlatFields]field) (n int, ok bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return 0, false
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return 0, false // empty: rare, and the generic path says why it fails
	}
	for {
		// Key: a string with no escape.
		if i >= len(body) || body[i] != '"' {
			return 0, false
		}
		start := i + 1
		end := start
		for end < len(body) && body[end] != '"' {
			if body[end] == '\\' || body[end] < 0x20 {
				return 0, false
			}
			end++
		}
		if end >= len(body) {
			return 0, false
		}
		name := body[start:end]
		i = skipSpace(body, end+1)
		if i >= len(body) || body[i] != ':' {
			return 0, false
		}
		i = skipSpace(body, i+1)
		vend, ok := scanValue(body, i)
		if !ok {
			return 0, false
		}
		for _, f := range fields[:n] {
			if string(f.name) == string(name) {
				return 0, false // a repeated key: the generic decoder keeps the last
			}
		}
		if n == maxFlatFields {
			return 0, false
		}
		fields[n] = field{name: name, raw: body[i:vend]}
		n++
		i = skipSpace(body, vend)
		if i >= len(body) {
			return 0, false
		}
		switch body[i] {
		case ',':
			i = skipSpace(body, i+1)
		case '}':
			if skipSpace(body, i+1) != len(body) {
				return 0, false
			}
			return n, true
		default:
			return 0, false
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanValue returns the end of the string, number or literal at b[i:].
func scanValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
				return i + len(lit), true
			}
		}
		return 0, false
	}
}

// scanString returns the end of the JSON string at b[i:] (b[i] is '"'),
// its escapes checked; the bytes are valid UTF-8 already (ParseRequest).
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if i+1 >= len(b) {
				return 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := hex4(b, i+2); !ok {
					return 0, false
				}
				i += 5
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// scanNumber returns the end of the JSON number at b[i:]: an optional
// minus, then 0 or a digit string not starting with 0, an optional
// fraction, an optional exponent.
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// unquote returns the value of the JSON string literal raw: without an
// escape, its bytes; with one, what encoding/json decodes.
func unquote(raw []byte) (string, bool) {
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' {
			var s string
			err := json.Unmarshal(raw, &s)
			return s, err == nil
		}
	}
	return string(raw[1 : len(raw)-1]), true
}
