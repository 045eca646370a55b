package net

import (
	"strconv"
	"unicode/utf8"
)

// The protocol's rules (PROTOCOL.md sections 1, 3 and 4), each defined
// once here and used by the server (net/chat), the client (net/client),
// the REPL, the admin commands and the database.

// DefaultPort is the protocol's TCP port (PROTOCOL.md section 1).
const DefaultPort = "7447"

// Limits of PROTOCOL.md sections 3 and 4.
const (
	// MaxNameLength is the longest pseudo or salon name, in characters.
	MaxNameLength = 32
	// MaxCidLength is the longest client message id.
	MaxCidLength = 64
	// DefaultMaxMessage is the largest text of a send by default, in
	// bytes (configurable on the server).
	DefaultMaxMessage = 65536
	// DefaultFetchLimit is a fetch's limit when the request has none.
	DefaultFetchLimit = 10
	// DefaultMaxFetch is the largest fetch limit by default
	// (configurable on the server).
	DefaultMaxFetch = 500
	// MaxWaitMS is the longest long-poll a fetch may ask for.
	MaxWaitMS = 25000
)

// NameRule says what a valid name is, for error messages.
const NameRule = "use 1 to 32 letters, digits, '-', '_' or '.'"

// ValidName reports whether s is a pseudo or salon name (PROTOCOL.md
// section 4): 1 to 32 ASCII letters, digits, '-', '_' and '.'.
func ValidName(s string) bool {
	if len(s) < 1 || len(s) > MaxNameLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ValidCid reports whether cid is a client message id (PROTOCOL.md 3.2):
// 1 to 64 printable ASCII characters (0x21 to 0x7E).
func ValidCid(cid string) bool {
	if len(cid) < 1 || len(cid) > MaxCidLength {
		return false
	}
	for i := 0; i < len(cid); i++ {
		if cid[i] < 0x21 || cid[i] > 0x7E {
			return false
		}
	}
	return true
}

// IsControl reports whether r is a control character of PROTOCOL.md 3.2:
// C0 (U+0000 to U+001F), DEL (U+007F) or C1 (U+0080 to U+009F).
func IsControl(r rune) bool {
	return r < 0x20 || (r >= 0x7F && r <= 0x9F)
}

// CheckText applies PROTOCOL.md 3.2 to a decoded text of a send: 1 to max
// bytes, valid UTF-8, no control character but newline and tab. The
// error's code is too_large for a text over max bytes (checked before its
// characters), bad_request otherwise; its Re is 0, for the caller to set.
func CheckText(text string, max int) *Error {
	switch {
	case len(text) == 0:
		return &Error{Code: CodeBadRequest, Message: "empty text"}
	case len(text) > max:
		return &Error{Code: CodeTooLarge, Message: "text longer than " + strconv.Itoa(max) + " bytes"}
	case !utf8.ValidString(text):
		return &Error{Code: CodeBadRequest, Message: "text is not valid UTF-8"}
	}
	for _, r := range text {
		if IsControl(r) && r != '\n' && r != '\t' {
			return &Error{Code: CodeBadRequest, Message: "text holds a control character"}
		}
	}
	return nil
}
