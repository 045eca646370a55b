package net

// Request ops and response ops of PROTOCOL.md section 3.
const (
	OpLogin     = "login"
	OpConnected = "connected"
	OpSend      = "send"
	OpAck       = "ack"
	OpFetch     = "fetch"
	OpMessages  = "messages"
	OpSalons    = "salons"
	OpWho       = "who"
	OpResume    = "resume"
	OpResumed   = "resumed"
	OpBye       = "bye"
	OpPasswd    = "passwd"
	OpError     = "error"

	// StatusConnected is the exact status a login and a resume answer carry.
	StatusConnected = "CONNECTÉ"
)

// Error codes of PROTOCOL.md 3.7.
const (
	CodeFrame          = "frame"
	CodeCrypto         = "crypto"
	CodeBadRequest     = "bad_request"
	CodeAuth           = "auth"
	CodeRateLimited    = "rate_limited"
	CodeForbidden      = "forbidden"
	CodeTooLarge       = "too_large"
	CodeUnknownSession = "unknown_session"
	CodeUnavailable    = "unavailable"
	CodeInternal       = "internal"
)

// Message is one message in a fetch answer.
type Message struct {
	ID     int64  `json:"id"`
	At     string `json:"at"` // RFC 3339, UTC, milliseconds: 2026-11-25T10:00:00.123Z
	Pseudo string `json:"pseudo"`
	System bool   `json:"system,omitempty"`
	Text   string `json:"text"`
}

// SalonInfo is one entry of a salons answer.
type SalonInfo struct {
	Name string `json:"name"`
	Last int64  `json:"last"`
}
