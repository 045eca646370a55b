package net

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestScanFlat: the common bodies take the flat path; what it is not
// sure of goes to the generic decoder.
func TestScanFlat(t *testing.T) {
	var buf [maxFlatFields]field
	for _, body := range []string{
		`{"op":"fetch","id":8,"salon":"general","after":5,"wait_ms":2500,"limit":100}`,
		`{"op":"send","id":7,"salon":"general","text":"a\nb \"q\" \u00e9\ud83d\ude00","cid":"k3J9"}`,
		` { "op" : "salons" , "id" : 1 } `,
		`{"id":1,"x":null,"y":true,"z":false,"n":-0.5e+3}`,
		`{"op":"login","id":1,"password":"é ü"}`,
	} {
		if _, ok := scanFlat([]byte(body), &buf); !ok {
			t.Errorf("not flat: %s", body)
		}
	}
	for _, body := range []string{
		`{}`, `[]`, `{"id":1,}`, `{"id":01}`, `{"id":1.}`, `{"id":-}`, `{"id":1e}`,
		`{"id":1,"id":2}`, `{"a\"b":1}`, `{"id":{"x":1}}`, `{"id":[1]}`, `{"id":1} x`,
		`{"id":"a` + "\x01" + `"}`, `{"id":"\x"}`, `{"id":"\u12"}`, `{"id":tru}`, `{"id" 1}`,
		`{"id":1`, `{"id":"x`, `{id:1}`,
	} {
		if _, ok := scanFlat([]byte(body), &buf); ok {
			t.Errorf("flat: %s", body)
		}
	}
}

// FuzzScanFlatSameAsJSON: whatever scanFlat accepts is valid JSON, and
// it reads the same members, with the same raw values, as encoding/json
// into a map; its strings decode as encoding/json decodes them.
func FuzzScanFlatSameAsJSON(f *testing.F) {
	for _, s := range []string{
		`{"op":"fetch","id":8,"salon":"g","after":5,"wait_ms":2500,"limit":3}`,
		`{"op":"send","id":7,"salon":"general","text":"a\ud83d\ude00\n\"\\\/","cid":"k"}`,
		`{"id":1,"x":null,"y":true,"z":false,"n":-0.5e+3}`,
		`{"id":1,"id":2}`, `{ "a" : "b" }`, `{"id":01}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // ParseRequest refuses it before
		}
		var buf [maxFlatFields]field
		n, ok := scanFlat(body, &buf)
		if !ok {
			return
		}
		fields := buf[:n]
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("scanFlat accepted invalid JSON %q: %v", body, err)
		}
		if len(m) != len(fields) {
			t.Fatalf("%q: %d members, encoding/json reads %d", body, len(fields), len(m))
		}
		for _, fl := range fields {
			raw, found := m[string(fl.name)]
			if !found || !bytes.Equal(raw, fl.raw) {
				t.Fatalf("%q: member %q = %q, encoding/json reads %q", body, fl.name, fl.raw, raw)
			}
			if fl.raw[0] != '"' {
				continue
			}
			var want string
			if err := json.Unmarshal(fl.raw, &want); err != nil {
				t.Fatalf("%q: %v", fl.raw, err)
			}
			if got, ok := unquote(fl.raw); !ok || got != want {
				t.Fatalf("unquote(%q) = %q, %v; encoding/json decodes %q", fl.raw, got, ok, want)
			}
		}
	})
}

// BenchmarkParseRequest: a long-poll fetch and a send, the bodies the
// server reads most.
func BenchmarkParseRequest(b *testing.B) {
	for name, body := range map[string]string{
		"Fetch": `{"op":"fetch","id":812,"salon":"general","limit":100,"after":104233,"wait_ms":2500}`,
		"Send":  `{"op":"send","id":813,"salon":"general","text":"a chat line of about a hundred bytes, which is what people type most of the time, more","cid":"Jx0sPq3v9bN2kLm8"}`,
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := ParseRequest([]byte(body)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
